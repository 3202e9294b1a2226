# syntax=docker/dockerfile:1
#
# PerfCatch agent image: the eBPF object (C, clang), the loader (Rust) and the agent
# (TypeScript on Node 24), built in three stages and assembled on node:24-slim.
#
#   docker build -t perfcatch .
#
# The runtime layout is the repository's own (dist/, loader/target/release/perfcatch-loader,
# build/perfcatch.bpf.o under /opt/perfcatch), so the agent's default paths work unchanged.
# Tested statically by test/unit/dockerfile.test.ts.

# ---------------------------------------------------------------------------------------------
# 1. bpf: build/perfcatch.bpf.o (CO-RE; runs on any kernel >= 5.8 with BTF)
# The kernel's types come from bpf/vmlinux/<arch>/vmlinux.h, vendored (bpf/vmlinux/README.md):
# the build reads no kernel BTF, so any builder works (remote, rootless, macOS VMs).
FROM debian:12 AS bpf
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY bpf/ bpf/
RUN make -s -C bpf \
 && test -s build/perfcatch.bpf.o

# ---------------------------------------------------------------------------------------------
# 2. loader: loader/target/release/perfcatch-loader (aya needs Rust >= 1.87, Cargo.toml's rust-version)
FROM rust:1.87-bookworm AS loader
WORKDIR /src/loader
COPY loader/ ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked \
 && test -x target/release/perfcatch-loader

# ---------------------------------------------------------------------------------------------
# 3. agent: dist/ and the production node_modules
FROM node:24-bookworm AS agent
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src/ src/
# The `node` devDependency (a whole Node binary, for `npm test` on hosts without Node 24) and
# typescript go with the prune; the image runs the base image's own Node 24.
RUN npm run build:ts \
 && npm prune --omit=dev --no-audit --no-fund \
 && test ! -e node_modules/node && test ! -e node_modules/.bin/node && test ! -e node_modules/typescript \
 && test -f dist/cli.js

# ---------------------------------------------------------------------------------------------
# 4. runtime: Node 24 slim, no compilers, non-root
FROM node:24-slim AS runtime
# The API (request paths, correlation ids, client addresses) stays on loopback, reached with
# `kubectl port-forward` or `docker exec`; binding it wider needs --api-token-file. /metrics
# and /health (no request data) listen on all addresses on their own port, for scrapers and
# probes.
ENV NODE_ENV=production \
    PERFCATCH_API_HOST=127.0.0.1 \
    PERFCATCH_METRICS_PORT=9091
WORKDIR /opt/perfcatch
COPY --from=agent /src/package.json ./package.json
COPY --from=agent /src/node_modules ./node_modules
COPY --from=agent /src/dist ./dist
COPY --from=loader /src/loader/target/release/perfcatch-loader ./loader/target/release/perfcatch-loader
COPY --from=bpf /src/build/perfcatch.bpf.o ./build/perfcatch.bpf.o

# File capabilities on the loader, so that it can load and attach the programs while the agent
# runs as uid 10001: CAP_BPF and CAP_PERFMON to load and attach, CAP_DAC_READ_SEARCH to read
# tracepoint ids under /sys/kernel/tracing (mode 0700, root's: with CAP_BPF and CAP_PERFMON
# alone a non-root loader fails with "tracefs not found"; measured on Linux 6.18). Applied
# here, not in a build stage, because COPY --from does not reliably keep the
# security.capability xattr; libcap2-bin is installed and purged in this one RUN, so setcap
# stays in no layer.
# File capabilities are no grant by themselves: the kernel caps them by the container's
# capability bounding set, so the DaemonSet must still add the capabilities (BPF, PERFMON,
# DAC_READ_SEARCH, SYS_PTRACE; drop ALL), and it ignores them under no_new_privs
# (allowPrivilegeEscalation: false). tracefs must be visible in the container (hostPath
# /sys/kernel/tracing): a non-root loader cannot mount it.
# Two ways to run it:
# - as this image's uid 10001 (allowPrivilegeEscalation unset or true): the loader gets its
#   capabilities from these file capabilities; the agent (node) holds none, so it cannot read
#   /proc/<pid>/environ or exe of other users' processes, and services are named after their
#   process name instead of OTEL_SERVICE_NAME;
# - as uid 0 with only the capabilities above (what the Helm chart does, with
#   allowPrivilegeEscalation: false; test/e2e/least-privilege.test.ts runs root with only
#   these): the file capabilities are then unused, and service names come from OTEL_SERVICE_NAME.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep loader/target/release/perfcatch-loader \
 && getcap loader/target/release/perfcatch-loader | grep -q cap_bpf \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/*

# A writable place for --db (SQLite persistence), owned by the agent's user.
RUN groupadd --system --gid 10001 perfcatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin perfcatch \
 && mkdir -p /var/lib/perfcatch && chown 10001:10001 /var/lib/perfcatch
USER 10001:10001

EXPOSE 9091
# /health is 503 while capture is down. (Kubernetes ignores this; the chart's probes use /health.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PERFCATCH_API_PORT || 9090) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The same V8 limits as `npm start` and the bin's shebang: a full 50K buffer fits in ~143 MB.
ENTRYPOINT ["node", "--max-old-space-size=160", "--max-semi-space-size=2", "dist/cli.js"]
CMD ["agent"]
