#!/usr/bin/env bash
# The whole test suite: builds everything, builds (or reuses) the pinned peers, then runs the
# Rust loader tests and every TypeScript test (unit + real-kernel end-to-end) under Node 24,
# then the kernel matrix (test/kernels/run-matrix.ts: the smoke on the host and in VMs).
# Needs root (or CAP_BPF + CAP_PERFMON): the end-to-end tests load the real eBPF programs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:/usr/local/go/bin:$PATH"

npm run --silent build
echo "otelcol: $(bash test/peers/build-otelcol.sh)"
echo "jaeger: $(bash test/peers/build-jaeger.sh)"
echo "helm: $(bash test/peers/build-helm.sh)"
echo "kube-apiserver: $(bash test/peers/build-kube-apiserver.sh | tr "\n" " ")"

echo "== loader (Rust) tests"
cargo test --release --quiet --manifest-path loader/Cargo.toml

echo "== type check"
tsc -p tsconfig.test.json

echo "== agent tests (unit + real kernel)"
# Both suites run whatever the first one gave, and the script fails if either failed.
# The TAP copy feeds the failure digest printed at the very end, after the kernel matrix.
status=0
tap="$(mktemp --suffix=.tap)"
node --test --test-concurrency=1 --test-timeout=600000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  test/unit/*.test.ts test/e2e/*.test.ts || status=$?

echo "== kernel matrix (host + Debian kernels in VMs)"
node test/kernels/run-matrix.ts || status=$?

echo "== agent tests: failures"
node test/failure-digest.ts "$tap"
exit "$status"
