#!/usr/bin/env bash
# Fetches one Debian kernel package (kernel image + its modules, with BTF) and caches it by
# kernel release, like the other peers, so only the first run on a machine downloads it.
# Usage: prepare-kernel.sh SUITE PINNED_PACKAGE NAME_REGEX
#   SUITE is informational (the private sources list below holds every suite we use);
#   PINNED_PACKAGE is tried first; mirrors drop old ABIs, so when it is gone the newest
#   package whose name matches NAME_REGEX is taken instead.
# Prints the kernel release on stdout's last line; the tree is in $KERNEL_CACHE/<release>/
# (boot/vmlinuz-<release>, lib/modules/<release>), and /lib/modules/<release> points at it
# (virtme-run --mods auto looks there), with depmod run.
# The machine's own apt sources are left alone: the extra suites live in a private sources
# list and lists directory, used for this download only.
set -euo pipefail
SUITE="$1" PINNED="$2" REGEX="$3"
KERNEL_CACHE="${PERFCATCH_KERNEL_CACHE:-$HOME/.cache/perfcatch/kernels}"
log() { echo "prepare-kernel ($SUITE): $*" >&2; }

release_of() { local r="${1#linux-image-}"; echo "${r%-unsigned}"; }

link_modules() {
  local rel="$1" tree="$KERNEL_CACHE/$1/lib/modules/$1"
  mkdir -p /lib/modules
  # A dangling link (a tree removed by hand) or one to another copy is replaced; a real
  # directory (an installed kernel of the same release) is used as it is.
  if [[ -L "/lib/modules/$rel" && "$(readlink -f "/lib/modules/$rel")" != "$(readlink -f "$tree")" ]]; then
    rm "/lib/modules/$rel"
  fi
  [[ -e "/lib/modules/$rel" ]] || ln -s "$tree" "/lib/modules/$rel"
  [[ -s "/lib/modules/$rel/modules.dep" ]] || depmod "$rel"
}

ready() { [[ -f "$KERNEL_CACHE/$1/boot/vmlinuz-$1" && -d "$KERNEL_CACHE/$1/lib/modules/$1" ]]; }

rel="$(release_of "$PINNED")"
if ready "$rel"; then link_modules "$rel"; echo "$rel"; exit 0; fi

APT="$KERNEL_CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$APT/sources.list" <<EOF
deb [signed-by=$KEYRING] http://deb.debian.org/debian bookworm main
deb [signed-by=$KEYRING] http://deb.debian.org/debian bookworm-backports main
deb [signed-by=$KEYRING] http://deb.debian.org/debian bullseye main
deb [signed-by=$KEYRING] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=$KEYRING] http://deb.debian.org/debian-security bullseye-security main
EOF
OPTS=(-o "Dir::Etc::sourcelist=$APT/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$APT/lists"
  -o "Dir::Cache=$APT/cache" -o Dir::State::status=/var/lib/dpkg/status -o Debug::NoLocking=1
  -o APT::Sandbox::User=root)
# One update serves the fetches of a whole matrix run (each kernel calls this script).
if [[ -z "$(find "$APT/lists" -maxdepth 1 -name '*InRelease' -mmin -360 2>/dev/null | head -n1)" ]]; then
  log "updating the private package lists"
  apt-get "${OPTS[@]}" -qq update >&2
fi

pkg="$PINNED"
if ! apt-cache "${OPTS[@]}" show "$pkg" >/dev/null 2>&1; then
  pkg="$(apt-cache "${OPTS[@]}" pkgnames linux-image- | grep -E "$REGEX" | sort -V | tail -n1 || true)"
  [[ -n "$pkg" ]] || { log "no package matches $REGEX"; exit 1; }
  log "$PINNED is gone from the mirror; using $pkg"
  rel="$(release_of "$pkg")"
  if ready "$rel"; then link_modules "$rel"; echo "$rel"; exit 0; fi
fi

WORK="$(mktemp -d "$KERNEL_CACHE/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "downloading $pkg"
(cd "$WORK" && apt-get "${OPTS[@]}" -qq download "$pkg" >&2)
dpkg-deb -x "$WORK"/*.deb "$WORK/tree"
[[ -f "$WORK/tree/boot/vmlinuz-$rel" ]] || { log "$pkg has no boot/vmlinuz-$rel"; exit 1; }
rm -rf "${KERNEL_CACHE:?}/$rel"
# Extract beside the cache and rename, so an interrupted fetch never looks ready.
mv "$WORK/tree" "$KERNEL_CACHE/$rel"
link_modules "$rel"
echo "$rel"
