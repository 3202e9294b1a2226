/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel-private state and the maps that hold it: one map per purpose. */
#ifndef __PC_MAPS_BPF_H
#define __PC_MAPS_BPF_H

#include "perfcatch.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2

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

static __always_inline __u64 pack_key(struct pc_conn_key *k)
{
	return ((__u64)k->tgid << 32) | k->fd;
}

enum conn_phase {
	PHASE_IDLE = 0,    /* nothing exchanged yet */
	PHASE_READING = 1, /* server: request arriving; client: response arriving */
	PHASE_WRITING = 2, /* server: response leaving; client: request leaving */
	PHASE_FLUSHED = 3  /* server: response idle, request already emitted by the idle flush */
};

enum conn_role {
	ROLE_SERVER = 1, /* accepted: requests come in */
	ROLE_CLIENT = 2  /* opened by the process: its dependencies */
};

#define MAX_DEPS_PER_REQUEST 8

/* A connection and its current request (server) or exchange (client). */
struct conn_state {
	__u64 conn_id;
	__u64 cgroup_id;
	__u64 start_ns;
	__u64 end_ns;
	__u64 cpu_ns;            /* server: charged so far (atomic: other threads may charge it) */
	__u64 cpu_at_last_write; /* server: cpu_ns when the last response byte left (pipelining) */
	__u64 bytes_received;
	__u64 bytes_sent;
	__u64 rss_bytes;
	__u64 sk;                /* struct sock *, to read ports lazily */
	/* server: caller's client conn_id when it is tracked on this host */
	__u64 peer_conn_id;
	/* server: outbound connections used by the current request (packed conn keys) */
	__u64 dep_keys[MAX_DEPS_PER_REQUEST];
	/* client: the request the current exchange serves */
	struct pc_conn_key parent;
	__u64 parent_conn_id;
	__u32 parent_seq;
	__u32 seq;
	__u64 connect_start_ns;
	__u64 connect_ns;
	__u32 tid;
	__u32 flags;
	__u16 req_captured;
	__u16 resp_captured;
	__u16 family;
	__u16 local_port;
	__u16 remote_port;
	__u8 phase;
	__u8 role;
	__u8 dep_count;
	__u8 emitted;            /* client: current exchange already sent */
	__u8 from_start;         /* seen since accept/connect: seq numbers match the peer's */
	__u8 peer_looked_up;
	__u8 parent_at_connect;  /* client: parent chosen when connect() was called */
	__u8 caller_inferred;    /* client: parent chosen among several (PC_DF_CALLER_INFERRED) */
	__u8 local_addr[16];
	__u8 remote_addr[16];
	char comm[16];
};
/* The loader reads the conn_id of an entry it reclaims (loader/src/reclaim.rs). */
_Static_assert(__builtin_offsetof(struct conn_state, conn_id) == 0, "conn_id first");

/* Both ends of a TCP connection on this host, as the connecting side sees it. */
struct tuple_key {
	__u8 saddr[16]; /* IPv4 as ::ffff:a.b.c.d */
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 _pad;
};

struct connecting_state {
	struct pc_conn_key key;
	__u64 start_ns;
};

/* What a syscall on a tracked socket was asked to do, read at its exit from the registers it
 * was entered with (so no program runs, and no map is written, at syscall entry). */
enum io_op {
	IO_READ = 1,     /* arg is the user buffer */
	IO_READV = 2,    /* arg is a struct iovec * */
	IO_RECVMSG = 3,  /* arg is a struct user_msghdr * */
	IO_WRITE = 4,
	IO_WRITEV = 5,
	IO_SENDMSG = 6,
	IO_SENDFILE = 7  /* no payload capture */
};

struct io_call {
	__u64 arg;
	__u32 fd;
	__u32 msg_flags; /* MSG_* of recvfrom/recvmsg (args_at_enter only) */
	__u8 op;
	__u8 _pad[7];
};

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

/* A request waiting on one thread for its code to act (resource_tracker.bpf.h). */
struct waiting_request {
	struct pc_conn_key key;
	__u64 conn_id;
	__u32 seq;
	__u32 loop_turn; /* the thread's event-loop turn when it was queued */
};

/* Requests in the order their code will run on a thread: a ring, oldest at `head`. A request
 * that acted out of order is marked dead in place (conn_id 0), so no entry is ever shifted:
 * the verifier walks each operation once, without nested loops. */
#define REQUEST_FIFO_MAX 8
struct request_fifo {
	struct waiting_request at[REQUEST_FIFO_MAX];
	__u8 head;
	__u8 used; /* slots from head, dead ones included */
	__u8 live; /* entries not marked dead */
	__u8 _pad[5];
};

/* Per serving thread: its CPU segment in progress and who it serves (resource_tracker.bpf.h). */
struct thread_state {
	struct pc_conn_key owner; /* the request it last served: read, wrote, or got an upstream
				   * response for */
	__u64 owner_conn_id;
	__u32 owner_seq;
	__u32 owner_closed; /* slept after its owner's response started: the owner is done */
	__u64 runtime_mark; /* the thread's own CPU clock (se.sum_exec_runtime based) when the
			     * pending segment was last brought up to date */
	__u64 pending_ns;   /* on-CPU time since the segment began, not charged yet */
	__u32 in_flight;    /* requests it began reading whose response has not started */
	__u32 loop_turn;    /* its event loop's turns so far (epoll waits it returned from) */
	__u8 just_woke;     /* its last tracked syscall read the owner's upstream response */
	/* How many turns after its read a request's code acts, learned from responses: a fresh
	 * request's handler, and a woken one's continuation (resource_tracker.bpf.h). */
	__u8 turns_fresh;
	__u8 turns_woken;
	__u8 seen_fresh;    /* responses observed in the current learning window, and the */
	__u8 seen_woken;    /* fewest turns among them */
	__u8 least_fresh;
	__u8 least_woken;
	__u8 learned;       /* a full window was seen: 1 fresh, 2 woken */
	struct request_fifo fresh; /* read, their handler has not acted yet */
	struct request_fifo woken; /* an upstream response of theirs was read, and the code
				    * that continues them has not acted yet */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* loader overrides */
} events SEC(".maps");

/*
 * Tracked connections. A plain hash, not an LRU: an LRU would make room by silently evicting a
 * live connection (and its request under way), whereas here an insert into a full table fails:
 * an inbound connection's requests are then counted lost (PC_CNT_CONN_TABLE_FULL,
 * table_full()) until one of them finds room; an outbound connection is tried again at its
 * next I/O (its exchanges meanwhile are missing from their requests, uncounted).
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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32); /* tid */
	__type(value, struct thread_state);
} threads SEC(".maps");

/* A process that serves monitored connections (its outbound connections are tracked too),
 * and its RSS as process_rss_pages() last computed it (resource_tracker.bpf.h). Threads
 * update it without a lock: a lost update costs one refresh. */
struct server_process {
	__u64 rss_pages;      /* RSS in pages at the last update */
	__u64 rss_count_base; /* global rss_stat counts (pages) at the last update */
	__u64 rss_exact_ns;   /* when rss_pages was last summed exactly */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, struct server_process);
} server_tgids SEC(".maps");

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
 * table is still full; maybe_adopt()). */
#define IGN_NOT_TRACKED 1
#define IGN_TABLE_FULL 2
#define IGN_IN_REQUEST 4 /* IGN_TABLE_FULL: a request has begun (read) and was counted */

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

/* Serving threads' on-CPU ns charged to no request, by process (resource_tracker.bpf.h); the
 * loader reports it as pc_process_cpu records with its stats. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32); /* tgid */
	__type(value, __u64);
} cpu_unattributed SEC(".maps");

/* Per CPU: bpf_ktime_get_ns() minus the scheduler's task clock (rq_clock_task), measured at
 * each context switch (resource_tracker.bpf.h: thread_runtime). */
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

/*
 * Per-CPU offsets (__per_cpu_offset[cpu]), found once by the idle flush's prctl tracepoint
 * (bpf/idle_flush.bpf.h), so that RSS can be summed over the per-CPU parts of mm->rss_stat
 * like /proc does.
 */
#define MAX_CPUS 256
struct cpu_offsets {
	__u64 off[MAX_CPUS];
	__u32 n;
	__u32 _pad;
};

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

struct probe_scratch {
	__u8 b[512];
};

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

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

/*
 * An inbound connection "conns" had no room for (the insert failed: the table is full). Its
 * requests are counted lost, the one under way now if `in_request` (a read), until one finds
 * room (maybe_adopt()).
 */
static __always_inline void table_full(struct pc_conn_key *key, bool in_request)
{
	__u8 v = IGN_TABLE_FULL;
	if (in_request) {
		v |= IGN_IN_REQUEST;
		count(PC_CNT_CONN_TABLE_FULL);
	}
	bpf_map_update_elem(&ignored_fds, key, &v, BPF_ANY);
}

/* Unread data within which a record crossing wakeup_bytes wakes the loader. */
#define WAKEUP_WINDOW (64 << 10)

/*
 * Batch wakeups: the loader drains on a timer, so wake it only as unread data crosses
 * wakeup_bytes. A loader that is already behind gains nothing from more wakeups, and each
 * one costs the writer an interrupt (an IPI, and a VM exit under virtualisation): waking on
 * every record past the threshold tripled the in-kernel cost per request at saturation.
 */
static __always_inline __u64 wakeup_flag_for(__u64 unread)
{
	return unread >= wakeup_bytes && unread < wakeup_bytes + WAKEUP_WINDOW ? BPF_RB_FORCE_WAKEUP
									      : BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 wakeup_flag(void)
{
	return wakeup_flag_for(bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA));
}

#endif /* __PC_MAPS_BPF_H */
