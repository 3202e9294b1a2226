/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the loader sets, sizes and reads: the load-time settings (.rodata) and every map, one
 * map per purpose. Their value types are in types.bpf.h; the code that counts and wakes the
 * loader around the ring buffer "events" is in ringbuf.bpf.h.
 */
#ifndef __PC_MAPS_BPF_H
#define __PC_MAPS_BPF_H

#include "types.bpf.h"

/* Tunables, set by the loader at load time (EbpfLoader::override_global). */
const volatile __u32 capture_req_bytes = PC_CAPTURE_REQ_DEFAULT;
const volatile __u32 capture_resp_bytes = PC_CAPTURE_RESP_DEFAULT;
const volatile __u32 capture_dep_bytes = 512;    /* each direction of an outbound exchange */
const volatile __u64 shed_capture_bytes = 8 << 20; /* skip payload capture past this */
const volatile __u64 wakeup_bytes = 4 << 20;     /* wake the loader as unread data crosses this */

/*
 * Kernel variants, chosen by the loader from its feature probes (loader/src/features.rs) and
 * reported in /health. Being const, the verifier prunes the branch a kernel cannot run, so
 * one object loads everywhere: helpers missing on that kernel sit only in dead code.
 */
/* No bpf_task_pt_regs (< 5.15): syscall arguments are saved by sys_enter programs in
 * "io_args" instead of being read at exit from the entry registers. */
const volatile __u8 args_at_enter = 0;

/* args_at_enter: the arguments of each thread's syscall in progress, by tid. LRU: a thread
 * that exits mid-syscall leaves an entry behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct io_call);
} io_args SEC(".maps");

/* The loader's list for the listed idle flush (kernels without bpf_for_each_map_elem). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pc_flush_list);
} flush_list SEC(".maps");

/*
 * Server connections whose response has started and may go quiet: what the idle flush visits
 * (flush_set.bpf.h), so that it need not walk all of "conns" (a walk of its 65,536 buckets
 * cost 100-400 us, twice a second). Value: the connection's conn_id. The loader sets
 * max_entries (1/8 of "conns"); a connection that finds no room sets flush_overflow, and the
 * next flush walks "conns" whole.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192); /* loader overrides */
	__type(key, struct pc_conn_key);
	__type(value, __u64);
} flush_set SEC(".maps");

/* Key 0: nonzero once a connection found flush_set full (the loader reads and clears it where
 * it lists the connections itself, loader/src/idle_flush.rs). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} flush_overflow SEC(".maps");

/* Every record for userspace (perfcatch.h); its wakeup policy is in ringbuf.bpf.h. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* loader overrides */
} events SEC(".maps");

/*
 * Tracked connections. A plain hash, not an LRU: an LRU would make room by silently evicting a
 * live connection (and its request under way), whereas here an insert into a full table fails:
 * an inbound connection's requests are then counted lost (PC_CNT_CONN_TABLE_FULL, table_full()
 * in admission.bpf.h) until one of them finds room; an outbound connection is tried again at
 * its next I/O (its exchanges meanwhile are missing from their requests, uncounted).
 * Entries whose close was never seen (a process exiting closes its fds without a close
 * syscall; close_range, dup2) are reclaimed by the loader (loader/src/reclaim.rs). The loader
 * sets max_entries (--conn-table-entries).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pc_conn_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* Serving threads: their CPU segment and the requests they serve (cpu.bpf.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32); /* tid */
	__type(value, struct thread_state);
} threads SEC(".maps");

/* Processes that serve monitored connections, by tgid (struct server_process). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, struct server_process);
} server_tgids SEC(".maps");

/* Key 0: bumped at every insert into server_tgids and every delete (serving.bpf.h), so that
 * what a CPU remembers of a process is dropped once the set of serving processes changes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} server_tgids_gen SEC(".maps");

/* Per CPU: whether the last processes seen serve, at which server_tgids_gen (serving.bpf.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct serving_memo);
} serving_memo SEC(".maps");

/* Local ports something listens on: tells adopted inbound sockets from outbound ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);
	__type(value, __u8);
} listen_ports SEC(".maps");

/* fds of server processes not tracked: not TCP connections worth tracking (IGN_NOT_TRACKED,
 * until they are closed), or inbound connections the full "conns" table had no room for
 * (IGN_TABLE_FULL: each request that begins on one tries again, and is counted lost when the
 * table is still full; maybe_adopt()). Values: types.bpf.h. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pc_conn_key);
	__type(value, __u8);
} ignored_fds SEC(".maps");

/* Sockets between connect() and ESTABLISHED, for handshake timing. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64); /* struct sock * */
	__type(value, struct connecting_state);
} connecting SEC(".maps");

/* Outbound connections of tracked processes by 4-tuple: links callee to caller on one host. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tuple_key);
	__type(value, __u64); /* conn_id */
} client_tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PC_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Serving threads' on-CPU ns charged to no request, by process (cpu.bpf.h); the
 * loader reports it as pc_process_cpu records with its stats. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, __u64);
} cpu_unattributed SEC(".maps");

/* Per CPU: bpf_ktime_get_ns() minus the scheduler's task clock (rq_clock_task), measured at
 * each context switch (resource_tracker.bpf.c; read by cpu.bpf.h: thread_runtime). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} task_clock_offset SEC(".maps");

/* Source of conn ids: per-CPU counter, CPU number in the top byte. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} conn_id_seq SEC(".maps");

/* Per-CPU offsets (struct cpu_offsets), for the RSS sum. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_offsets);
} percpu_offsets SEC(".maps");

/* A per-CPU map whose element addresses reveal the per-CPU offsets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} percpu_probe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct probe_scratch);
} probe_scratch SEC(".maps");

/* Staging area for pc_data: too big for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pc_data);
} data_scratch SEC(".maps");

/* Filters (see struct pc_filter_cfg in perfcatch.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pc_filter_cfg);
} filter_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} filter_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} filter_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} filter_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[16]);
	__type(value, __u8);
} filter_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} ignore_pids SEC(".maps");

/* Scratch for process_identity.bpf.c: one environment entry at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct env_scratch);
} env_scratch SEC(".maps");

#endif /* __PC_MAPS_BPF_H */
