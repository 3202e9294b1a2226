// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * PerfCatch eBPF programs: one object, built from this file alone. The programs are in units
 * (*.bpf.c, one concern each) included below, as OBI's generictracer.c includes its own; what
 * several units share is in headers (*.bpf.h), which include what they use. No unit includes
 * another.
 *
 * Units (the programs):
 *   resource_tracker.bpf.c   - sched_switch and epoll waits: the CPU segments of serving threads
 *   dependency_tracker.bpf.c - connect() and the handshake of outbound connections
 *   request_tracker.bpf.c    - accept/listen/read/write/close syscall tracepoints of both roles
 *   idle_flush.bpf.c         - reports requests on idle keep-alive connections (prctl trigger)
 *   process_identity.bpf.c   - OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES of each exec
 * Shared headers:
 *   request.bpf.h    - emit_request(): a request closed in the kernel and sent
 *   dependency.bpf.h - outbound exchanges: tracked, attributed to their caller, sent
 *   cpu.bpf.h        - per-request CPU: thread segments and the queues of waiting requests
 *   rss.bpf.h        - a serving process's RSS, as /proc computes it
 *   io.bpf.h         - payload capture (pc_data), both roles
 *   sock.bpf.h       - from an fd to its TCP socket and addresses
 *   admission.bpf.h  - the filters, conn ids and the full-table count: the way into "conns"
 *   ringbuf.bpf.h    - counters and the ring buffer's wakeup policy
 *   maps.bpf.h       - load-time settings and every map, one per purpose
 *   types.bpf.h      - kernel-private types (conn_state, thread_state, ...)
 *   core_fixes.bpf.h - older kernels' struct layouts, as CO-RE flavours
 *   perfcatch.h      - every record that userspace reads
 * vmlinux.h is vendored per architecture (vmlinux/<arch>/vmlinux.h; `make -C bpf vmlinux`).
 * Hooks are tracepoints and tp_btf only: no kprobes, no fentry (README: Kernel support).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "perfcatch.h"
#include "resource_tracker.bpf.c"
#include "dependency_tracker.bpf.c"
#include "request_tracker.bpf.c"
#include "idle_flush.bpf.c"
#include "process_identity.bpf.c"

/*
 * Userspace-only records and enums, referenced here so that their layouts are in this
 * object's BTF: the Rust and TypeScript layout tests read them from there.
 */
struct pc_btf_anchor {
	struct pc_request request;
	struct pc_dependency dependency;
	struct pc_data data;
	struct pc_process_env process_env;
	struct pc_stats stats;
	struct pc_process_cpu process_cpu;
	struct pc_loader_info loader_info;
	struct pc_ring_mark ring_mark;
	struct pc_filter_cfg filter_cfg;
	struct pc_flush_list flush_list;
	struct pc_h2_io h2_io;
	enum pc_h2_limits h2_limits;
	enum pc_h2_flags h2_flags;
	enum pc_record_type record_type;
	enum pc_request_flags request_flags;
	enum pc_dependency_flags dependency_flags;
	enum pc_direction direction;
	enum pc_env_key env_key;
	enum pc_counter counter;
	enum pc_loader_counter loader_counter;
	enum pc_capture_default capture_default;
	enum pc_loader_exit loader_exit;
	enum pc_abi abi;
	enum pc_flush flush;
	enum pc_data_size data_size;
	enum pc_env_limit env_limit;
};
struct pc_btf_anchor *pc_btf_anchor __attribute__((unused));

char LICENSE[] SEC("license") = "Dual BSD/GPL";
