#!/usr/bin/env bash
# One-time setup on Debian 12 (as root): system packages, Rust/Node dependencies, and a build
# of all three parts (bpf object, Rust loader, TypeScript agent). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

APT_PACKAGES=(clang llvm libbpf-dev bpftool make gcc pkg-config curl ca-certificates python3 python3-venv nginx-light wrk util-linux e2fsprogs victoria-metrics prometheus)
# The kernel matrix (npm run test:kernels) boots Debian kernels with virtme-ng under qemu;
# kmod for depmod, busybox-static for virtme's initramfs, debian-archive-keyring for the
# private sources list the kernels are fetched from.
APT_PACKAGES+=(qemu-system-x86 kmod busybox-static debian-archive-keyring)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
command -v node >/dev/null || missing+=(nodejs npm)
command -v javac >/dev/null || missing+=(default-jdk-headless)  # test peers: Java HttpServer
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a Prometheus service on :9090, the agent API's default port; the exemplar
  # test runs its own Prometheus on a free port.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
fi

# Rust >= 1.87 for aya 0.14 (Debian's cargo is older): use rustup's toolchain when present.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
  log "installing Rust with rustup"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# Tracepoint ids are resolved through tracefs; bpffs is where pinned objects would live.
# Mounting them here means the agent itself never needs CAP_SYS_ADMIN.
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true

# Offline Kubernetes schemas for the chart tests.
python3 -m pip show kubernetes-validate >/dev/null 2>&1 || python3 -m pip install --quiet kubernetes-validate==1.37.0
# virtme-run boots the kernel matrix's VMs over the host's root filesystem.
command -v virtme-run >/dev/null || python3 -m pip install --quiet virtme-ng==1.42

# Go test peers (test/servers/**/go.mod: the grpc-go server and client, gin) are built by the
# tests from their committed go.mod/go.sum; their modules are fetched here, once, from the Go
# module proxy. The Python peers (grpcio, aiohttp, Flask) are pip-installed into venvs by the
# tests from their frozen requirements (test/harness/frameworks.ts), hence python3-venv above.
GO=$(command -v go || echo /usr/local/go/bin/go)
if [[ -x "$GO" ]]; then
  log "fetching the Go test peers' modules"
  for mod in $(find test/servers -name go.mod); do (cd "$(dirname "$mod")" && GOTOOLCHAIN=local "$GO" mod download); done
else
  log "no Go toolchain: the Go test peers cannot be built (the test suite needs Go >= 1.24)"
fi

log "installing npm dependencies (Node 24 comes in as a devDependency)"
npm ci --no-audit --no-fund --loglevel=error

log "building bpf object, loader and agent"
npm run --silent build

# `perfcatch` as a plain command, run by the project's Node 24 (the machine's node may be
# older, and npm would then print EBADENGINE warnings before `npx perfcatch` output).
printf '#!/bin/sh\nexec "%s/node_modules/.bin/node" --max-old-space-size=160 --max-semi-space-size=2 "%s/dist/cli.js" "$@"\n' \
  "$PWD" "$PWD" > /usr/local/bin/perfcatch
chmod 755 /usr/local/bin/perfcatch
log "done: run the agent with 'npm start' (API on http://127.0.0.1:9090)"
