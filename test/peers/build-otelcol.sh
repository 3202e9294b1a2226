#!/usr/bin/env bash
# Builds a pinned OpenTelemetry Collector with ocb (the collector builder) from the Go module
# proxy and caches it by version, so only the first run on a machine pays the build.
# Prints the binary's path on stdout.
set -euo pipefail
OTELCOL_VERSION="${OTELCOL_VERSION:-0.161.0}"
# Stable (v1.x) collector modules ship on the same release as v0.x: 0.161.0 <-> 1.67.0.
OTELCOL_STABLE_VERSION="${OTELCOL_STABLE_VERSION:-1.67.0}"
CACHE="${PERFCATCH_PEER_CACHE:-$HOME/.cache/perfcatch/peers}/otelcol-${OTELCOL_VERSION}"
BIN="$CACHE/dist/otelcol-perfcatch"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi

mkdir -p "$CACHE"
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null)/bin"
export GOBIN="$CACHE/bin"
echo "building otelcol ${OTELCOL_VERSION} with ocb into $CACHE (first run only)" >&2
go install "go.opentelemetry.io/collector/cmd/builder@v${OTELCOL_VERSION}" >&2
cat > "$CACHE/manifest.yaml" <<YAML
dist:
  name: otelcol-perfcatch
  description: PerfCatch test collector
  output_path: $CACHE/dist
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v${OTELCOL_VERSION}
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/debugexporter v${OTELCOL_VERSION}
  - gomod: go.opentelemetry.io/collector/exporter/otlpexporter v${OTELCOL_VERSION}
  - gomod: go.opentelemetry.io/collector/exporter/otlphttpexporter v${OTELCOL_VERSION}
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter v${OTELCOL_VERSION}
processors:
  - gomod: go.opentelemetry.io/collector/processor/batchprocessor v${OTELCOL_VERSION}
  - gomod: go.opentelemetry.io/collector/processor/memorylimiterprocessor v${OTELCOL_VERSION}
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/processor/tailsamplingprocessor v${OTELCOL_VERSION}
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/processor/attributesprocessor v${OTELCOL_VERSION}
providers:
  - gomod: go.opentelemetry.io/collector/confmap/provider/envprovider v${OTELCOL_STABLE_VERSION}
  - gomod: go.opentelemetry.io/collector/confmap/provider/fileprovider v${OTELCOL_STABLE_VERSION}
YAML
"$GOBIN/builder" --config "$CACHE/manifest.yaml" >&2
echo "$BIN"
