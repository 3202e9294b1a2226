#!/usr/bin/env bash
# Builds a pinned Helm 3 CLI from the Go module proxy and caches it by version, so only the
# first run on a machine pays the build. Used by test/e2e/helm-chart.test.ts (lint + template of
# charts/perfcatch; no cluster needed). Prints the binary's path on stdout.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-3.21.4}"
CACHE="${PERFCATCH_PEER_CACHE:-$HOME/.cache/perfcatch/peers}/helm-${HELM_VERSION}"
BIN="$CACHE/bin/helm"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi

mkdir -p "$CACHE/bin"
export PATH="$PATH:/usr/local/go/bin"
echo "building helm ${HELM_VERSION} into $CACHE (first run only)" >&2
# Build to a temporary GOBIN and move into place, so an interrupted build never leaves a
# half-written binary that the cache check above would accept.
TMP_BIN="$(mktemp -d "$CACHE/gobin.XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
GOBIN="$TMP_BIN" CGO_ENABLED=0 go install -trimpath \
  -ldflags "-X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}" \
  "helm.sh/helm/v3/cmd/helm@v${HELM_VERSION}" >&2
mv "$TMP_BIN/helm" "$BIN"
echo "$BIN"
