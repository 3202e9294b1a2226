#!/usr/bin/env bash
# Builds a pinned Jaeger v2 (cmd/jaeger, the all-in-one OTel-collector-based binary) from the Go
# module proxy and caches it by version, so only the first run on a machine pays the build.
# Prints the binary's path on stdout.
#
# Plain `go install github.com/jaegertracing/jaeger/cmd/jaeger@vX` is refused because upstream's
# go.mod has a replace directive, so we build through a throw-away wrapper module that copies it.
set -euo pipefail
# The v2 binary ships in the Go module's v1.x versions (v1.76.0 <-> Jaeger v2.13.0).
JAEGER_VERSION="${JAEGER_VERSION:-1.76.0}"
CACHE="${PERFCATCH_PEER_CACHE:-$HOME/.cache/perfcatch/peers}/jaeger-${JAEGER_VERSION}"
BIN="$CACHE/bin/jaeger"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi

export PATH="$PATH:/usr/local/go/bin"
echo "building jaeger ${JAEGER_VERSION} (cmd/jaeger, v2) into $CACHE (first run only, takes minutes)" >&2
MOD="$CACHE/wrapper"
rm -rf "$MOD"
mkdir -p "$MOD" "$CACHE/bin"
cd "$MOD"
go mod init perfcatch.test/jaeger-peer >&2
# Copied from upstream's go.mod at v${JAEGER_VERSION} (its only replace directive).
go mod edit -replace=github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0
go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@v${JAEGER_VERSION}" >&2
# Fail loudly if upstream's replace directives ever change under us.
UPSTREAM_REPLACES="$(grep -E '^replace|^[[:space:]]+[^ ]+ => ' "$(go env GOMODCACHE)/cache/download/github.com/jaegertracing/jaeger/@v/v${JAEGER_VERSION}.mod" || true)"
if [[ "$UPSTREAM_REPLACES" != "replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0" ]]; then
  echo "upstream replace directives differ from the ones copied here:" >&2
  echo "$UPSTREAM_REPLACES" >&2
  exit 1
fi
go build -trimpath -ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v${JAEGER_VERSION}" \
  -o "$BIN.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
