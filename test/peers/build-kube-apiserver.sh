#!/usr/bin/env bash
# Builds a pinned kube-apiserver and the etcd it is tested with from the Go module proxy and
# caches them by version, so only the first run on a machine pays the build (5-20 minutes on 2
# cores). Used by test/harness/kube-apiserver.ts: a real Kubernetes API server (no kubelet, no
# controllers) for tests that watch pods.
# Prints two lines on stdout: the kube-apiserver binary's path, then etcd's.
#
# `go install k8s.io/kubernetes/cmd/kube-apiserver@vX` is refused: kubernetes' go.mod replaces its
# 31 staging modules (k8s.io/api, apimachinery, client-go, ...) with ./staging/src/k8s.io/..., and
# requires them at v0.0.0. So we build through a throw-away wrapper module that replaces each one
# with its published version (v0.Y.Z for kubernetes v1.Y.Z), read from upstream's own go.mod.
#
# etcd is go.etcd.io/etcd/server/v3 (its root package is the etcd binary) at the version that
# kubernetes' go.mod requires, so it comes from the same module graph. Debian's etcd-server
# (3.4.23 on bookworm) also serves the tests, but it is older than the 3.4.29 / 3.5.11 that
# Kubernetes >= 1.31 documents as the minimum, and lacks the RequestWatchProgress that the
# apiserver's watch cache uses for consistent reads, so it would not behave like a real cluster.
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-1.34.4}"
STAGING_VERSION="0.${KUBE_VERSION#1.}"
CACHE="${PERFCATCH_PEER_CACHE:-$HOME/.cache/perfcatch/peers}/kube-apiserver-${KUBE_VERSION}"
BIN="$CACHE/bin/kube-apiserver"
ETCD="$CACHE/bin/etcd"

if [[ ! -x "$BIN" || ! -x "$ETCD" ]]; then
  export PATH="$PATH:/usr/local/go/bin"
  echo "building kube-apiserver ${KUBE_VERSION} and etcd into $CACHE (first run only, takes 5-20 minutes)" >&2
  MOD="$CACHE/wrapper"
  rm -rf "$MOD"
  mkdir -p "$MOD" "$CACHE/bin"
  cd "$MOD"
  go mod init perfcatch.test/kube-apiserver-peer >&2
  # Same language defaults as upstream's go.mod (its `godebug default=go1.24`).
  go mod edit -godebug=default=go1.24
  go mod download "k8s.io/kubernetes@v${KUBE_VERSION}" >&2
  UPSTREAM_MOD="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v${KUBE_VERSION}.mod"
  STAGING="$(sed -nE 's#^[[:space:]]*(k8s\.io/[^ ]+) => \./staging/src/k8s\.io/[^ ]+$#\1#p' "$UPSTREAM_MOD")"
  # Fail loudly if upstream's replace block ever holds anything but staging modules.
  ALL_REPLACES="$(sed -nE '/^replace \(/,/^\)/{/^[[:space:]]+[^ ]+ => /p}' "$UPSTREAM_MOD" | wc -l)"
  if [[ "$(echo "$STAGING" | wc -l)" != "$ALL_REPLACES" || "$ALL_REPLACES" -lt 30 ]]; then
    echo "upstream go.mod's replace directives are not the staging modules alone:" >&2
    sed -nE '/^replace \(/,/^\)/p' "$UPSTREAM_MOD" >&2
    exit 1
  fi
  for m in $STAGING; do go mod edit -replace="$m=$m@v${STAGING_VERSION}"; done
  go get "k8s.io/kubernetes/cmd/kube-apiserver@v${KUBE_VERSION}" >&2
  PKG=k8s.io/component-base/version
  if [[ ! -x "$BIN" ]]; then
    LDFLAGS="-s -w -X $PKG.gitVersion=v${KUBE_VERSION} -X $PKG.gitMajor=1 -X $PKG.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION")"
    LDFLAGS+=" -X $PKG.gitTreeState=clean"
    # The tags upstream's hack/lib/golang.sh uses for release (non-debug) binaries.
    CGO_ENABLED=0 go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$LDFLAGS" \
      -o "$BIN.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
    mv "$BIN.tmp" "$BIN"
  fi
  ETCD_VERSION="$(sed -nE 's#^[[:space:]]*go\.etcd\.io/etcd/server/v3 (v[^ ]+).*#\1#p' "$UPSTREAM_MOD")"
  if [[ -z "$ETCD_VERSION" ]]; then echo "upstream go.mod requires no go.etcd.io/etcd/server/v3" >&2; exit 1; fi
  go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ETCD.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$ETCD.tmp" "$ETCD"
fi
echo "$BIN"
echo "$ETCD"
