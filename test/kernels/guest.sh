#!/bin/sh
# Runs inside a kernel-matrix VM (virtme-run --script-sh), as root, over the host's root
# filesystem mounted read-only. Usage: guest.sh REPO_ROOT OUT_DIR COMMAND...
# OUT_DIR is the VM's only writable host directory (--rwdir): the guest's stdout does not
# reach the host, so the command's output, and its exit code, are written there.
ROOT="$1" OUT="$2"
shift 2
cd "$ROOT" || exit 1
{
  echo "release $(uname -r), $(nproc) CPUs"
  # The agent resolves tracepoints through tracefs; bpffs is where pinned objects would live.
  mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
  ip link set lo up 2>/dev/null
} >"$OUT/guest.log" 2>&1
# Temp files (the servers' truth files) on a guest tmpfs: /tmp is the host's, read-only.
TMPDIR="$(mktemp -d /var/tmp/perfcatch.XXXXXX 2>/dev/null || (mkdir -p "$OUT/tmp" && echo "$OUT/tmp"))"
export TMPDIR PERFCATCH_SMOKE_OUT="$OUT"
"$@" >>"$OUT/guest.log" 2>&1
echo $? >"$OUT/exit-code"
