/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Kernel-private types: the values of the maps (maps.bpf.h) and the state of a connection,
 * a serving thread and a serving process. Userspace reads none of them, except the leading
 * conn_id of struct conn_state (asserted below); what it reads is in perfcatch.h.
 */
#ifndef __PC_TYPES_BPF_H
#define __PC_TYPES_BPF_H

#include "perfcatch.h"

/* UAPI constants: vmlinux.h carries types, not macros. */
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2

/* A conn key as one __u64, as conn_state.dep_keys holds it. */
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
	__u16 status;            /* server: the response's final status code, 0 until read */
	__u8 phase;
	__u8 role;
	__u8 dep_count;
	__u8 emitted;            /* client: current exchange already sent */
	__u8 from_start;         /* seen since accept/connect: seq numbers match the peer's */
	__u8 peer_looked_up;
	__u8 parent_at_connect;  /* client: parent chosen when connect() was called */
	__u8 caller_inferred;    /* client: parent chosen among several (PC_DF_CALLER_INFERRED) */
	__u8 proto;              /* CONN_PROTO_H2 once detected (h2.bpf.h), else 0 */
	__u8 h2_upgrade;         /* server: the current response began "HTTP/1.1 101" (h2c) */
	__u8 in_flush_set;       /* server: listed in flush_set (flush_set.bpf.h) */
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

/* A request waiting on one thread for its code to act (cpu.bpf.h). */
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

/* thread_state.owner_closed of a thread whose segment goes to the streams of its next HTTP/2
 * syscall (h2.bpf.h): a sleep does not end it. */
#define OWNER_H2 2

/* Per serving thread: its CPU segment in progress and who it serves (cpu.bpf.h). */
struct thread_state {
	struct pc_conn_key owner; /* the request it last served: read, wrote, or got an upstream
				   * response for */
	__u64 owner_conn_id;
	__u32 owner_seq;
	__u32 owner_closed; /* slept after its owner's response started: the owner is done;
			     * OWNER_H2: its last tracked syscall was on an HTTP/2 connection */
	__u64 runtime_mark; /* the thread's own CPU clock (se.sum_exec_runtime based) when the
			     * pending segment was last brought up to date */
	__u64 pending_ns;   /* on-CPU time since the segment began, not charged yet */
	__u64 clock_debt;   /* a clock lead found at a switch, charged to nobody: paid by the next
			     * segments charged to nobody (cpu_clock.bpf.h) */
	__u32 in_flight;    /* requests it began reading whose response has not started */
	__u32 loop_turn;    /* its event loop's turns so far (epoll waits it returned from) */
	__u8 just_woke;     /* its last tracked syscall read the owner's upstream response */
	/* How many turns after its read a request's code acts, learned from responses: a fresh
	 * request's handler, and a woken one's continuation (cpu.bpf.h). */
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

/* A process that serves monitored connections (its outbound connections are tracked too),
 * and, on hosts with more than RSS_EXACT_ALWAYS_CPUS CPUs, its RSS as process_rss_pages() last
 * computed it (rss.bpf.h). Threads update it without a lock: a lost update costs one refresh. */
struct server_process {
	__u64 rss_pages;      /* RSS in pages at the last update */
	__u64 rss_count_base; /* global rss_stat counts (pages) at the last update */
	__u64 rss_exact_ns;   /* when rss_pages was last summed exactly */
};

/* Whether processes serve, as of a server_tgids generation: direct-mapped by a hash of the
 * tgid (serving.bpf.h). 64 slots: with 8 slots indexed by the tgid's low bits, two of the few
 * processes busy on a CPU (server, load generator, agent, collector) often shared a slot and
 * evicted each other at every syscall, each miss a cold hash lookup. A lookup reads one slot:
 * one cache line. */
#define SERVING_MEMO_BITS 6
#define SERVING_MEMO_SLOTS (1 << SERVING_MEMO_BITS)
struct serving_memo_slot {
	__u32 tgid;
	__u32 gen; /* bit 0: serving; the generation above it */
};
struct serving_memo {
	struct serving_memo_slot slot[SERVING_MEMO_SLOTS];
};

/* Values of map "ignored_fds": why an fd of a server process is not tracked until it is
 * closed. */
#define IGN_NOT_TRACKED 1
#define IGN_TABLE_FULL 2
#define IGN_IN_REQUEST 4 /* IGN_TABLE_FULL: a request has begun (read) and was counted */

/*
 * Per-CPU offsets (__per_cpu_offset[cpu]), found once by the idle flush's prctl tracepoint
 * (idle_flush.bpf.c), so that RSS can be summed over the per-CPU parts of mm->rss_stat like
 * /proc does (rss.bpf.h).
 */
#define MAX_CPUS 256
struct cpu_offsets {
	__u64 off[MAX_CPUS];
	__u32 n;
	__u32 _pad;
};

/* Scratch for the idle flush's read of struct bpf_array (find_percpu_offsets). */
struct probe_scratch {
	__u8 b[512];
};

/* One environment entry at a time (process_identity.bpf.c). */
struct env_scratch {
	__u8 b[PC_DATA_MAX];
};

#endif /* __PC_TYPES_BPF_H */
