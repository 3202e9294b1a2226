// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * PerfCatch eBPF programs: one object, split by concern into headers.
 *   request_tracker.bpf.h  - accept/read/write/close syscall tracepoints, request records
 *   dependency_tracker.bpf.h - outbound connections and the exchanges made while serving
 *   resource_tracker.bpf.h - on-CPU time per request (sched_switch), process RSS
 *   idle_flush.bpf.h       - reports requests on idle keep-alive connections (prctl trigger)
 *   process_identity.bpf.h - OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES of each exec
 *   admission.bpf.h        - the filters, on every path into the connection table
 *   maps.bpf.h             - kernel-private state, one map per purpose
 *   perfcatch.h            - every record that userspace reads
 * Hooks are tracepoints and tp_btf only: no kprobes, no fentry (see platform notes).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "perfcatch.h"
#include "maps.bpf.h"
#include "resource_tracker.bpf.h"
#include "dependency_tracker.bpf.h"
#include "request_tracker.bpf.h"
#include "idle_flush.bpf.h"
#include "process_identity.bpf.h"

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
	struct pc_filter_cfg filter_cfg;
	struct pc_flush_list flush_list;
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
