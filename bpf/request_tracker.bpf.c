/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Server-side request tracking from syscall tracepoints (stable ABI, no kprobes), and the
 * syscall entry points for both roles.
 *
 * accept/accept4 exit: admit the new TCP socket (filters) and start tracking (tgid, fd).
 * read-side exit:      a read after a write closes the previous request and starts a new one.
 * write-side exit:     extends the request's end; a write that starts a new HTTP/1.x status
 *                      line after response bytes closes the request (pipelining); the
 *                      response's first write gives its status (final_response_status).
 * close enter:         closes the open request and forgets the connection.
 *
 * Request boundaries need no protocol parsing beyond that 7-byte check: one request is the
 * span from its first read to its last write on a connection, keep-alive included.
 */

#include "maps.bpf.h"
#include "ringbuf.bpf.h"
#include "sock.bpf.h"
#include "io.bpf.h"
#include "admission.bpf.h"
#include "cpu.bpf.h"
#include "rss.bpf.h"
#include "dependency.bpf.h"
#include "request.bpf.h"
#include "h2.bpf.h"
#include "flush_set.bpf.h"
#include "serving.bpf.h"

/* Reset `c` for the next request on the same connection. */
static __always_inline void begin_request(struct conn_state *c, __u32 tid, __u64 now)
{
	/* seq changes first, atomically (a full barrier): an idle flush copying this connection
	 * on another CPU that sees any field reset below also sees the new seq, and drops its
	 * record. Plain stores could be reordered by the compiler, and the flush then sent request
	 * N with request N+1's first bytes. */
	__sync_fetch_and_add(&c->seq, 1);
	c->tid = tid;
	c->start_ns = now;
	c->end_ns = 0;
	c->cpu_ns = 0;
	c->cpu_at_last_write = 0;
	c->bytes_received = 0;
	c->bytes_sent = 0;
	c->rss_bytes = 0;
	c->flags = 0;
	c->req_captured = 0;
	c->resp_captured = 0;
	c->status = 0;
	c->dep_count = 0;
	c->cgroup_id = bpf_get_current_cgroup_id();
	/* Is the caller a tracked process on this host? Its connect registered the 4-tuple. */
	if (c->from_start && !c->peer_looked_up) {
		struct tuple_key t;
		tuple_of(c, false, &t);
		__u64 *peer = bpf_map_lookup_elem(&client_tuples, &t);
		c->peer_conn_id = peer ? *peer : 0;
		c->peer_looked_up = 1;
	}
}

/* A response starts while the previous one is done: pipelined requests read in one batch. */
static __always_inline void begin_pipelined_request(struct pc_conn_key *key, struct conn_state *c)
{
	emit_request(key, c, EMIT_AT_RESPONSE_BOUNDARY);
	/* On-CPU time since the previous response's last write belongs to this request. */
	__u64 tail_cpu = c->cpu_ns - c->cpu_at_last_write;
	__u64 start = c->start_ns;
	begin_request(c, c->tid, start);
	c->cpu_ns = tail_cpu;
	c->flags = PC_F_PIPELINED;
}

static __always_inline void server_io_exit(struct thread_state *ts, struct pc_conn_key *key,
					   struct conn_state *c, struct io_call *io, long ret,
					   bool is_read, __u32 tid, __u64 now)
{
	bool check_101 = false;
	if (is_read) {
		/* The segment that ends in a read is the owner's (its handler or epilogue), charged
		 * before the owner may be emitted below; once the owner was done, nobody's. */
		if (!charge_owner(ts, live_owner(ts), now, key->tgid))
			charge_nobody(ts, key->tgid);
		/* A read after the response: the previous request is over (unless the idle flush
		 * already sent it). */
		if (c->phase == PHASE_WRITING)
			emit_request(key, c, 0);
		if (c->phase != PHASE_READING) {
			begin_request(c, tid, now);
			fifo_push(&ts->fresh, key, c, ts->loop_turn);
			if (ts->in_flight < 255)
				ts->in_flight += 1;
		}
		c->phase = PHASE_READING;
		__sync_fetch_and_add(&c->bytes_received, ret);
	} else {
		if (c->seq == 0 && c->phase == PHASE_WRITING)
			return; /* adopted mid-response: wait for the next request */
		/* The response's first write: is it an h2c upgrade's 101? (checked after capture) */
		check_101 = c->phase == PHASE_READING && c->seq != 0 && c->from_start && ret >= 12;
		bool first_write = c->phase == PHASE_READING || c->phase == PHASE_IDLE;
		if (c->phase == PHASE_READING)
			response_started(c, ts, tid);
		if (c->phase == PHASE_IDLE)
			begin_request(c, tid, now); /* server spoke first */
		else if (c->phase == PHASE_FLUSHED)
			c->flags |= PC_F_LATE_WRITE; /* the response resumed after an idle flush */
		else if (c->phase == PHASE_WRITING && c->bytes_sent && ret >= 7 &&
			 io->op != IO_SENDFILE && starts_http_response(io)) {
			begin_pipelined_request(key, c);
			first_write = true;
		}
		/* Its status, read here (before the phase below, as the bytes are, for an idle flush
		 * on another CPU), spares a ring-buffer record of the response's head per request: the
		 * agent reads nothing else from it. A 1xx (an h2c 101) is captured as before. */
		if (first_write && io->op != IO_SENDFILE)
			c->status = final_response_status(io, ret);
		/* Bytes and clock before the phase: an idle flush on another CPU that sees this
		 * write's PHASE_WRITING (after PHASE_FLUSHED, a late write) sees its end too, and
		 * does not report the response without it. The atomic add is a compiler barrier. */
		__sync_fetch_and_add(&c->bytes_sent, ret);
		c->end_ns = now;
		asm volatile("" ::: "memory");
		c->phase = PHASE_WRITING;
		watch_for_idle(key, c);
		if (io->op == IO_SENDFILE)
			c->flags |= PC_F_SENDFILE;
		/* The segment that ends in this response write is its request's; it has acted. */
		charge(ts, c, false, now, key->tgid);
		response_acted(ts, c->conn_id, c->seq);
	}
	set_owner(ts, key, c);
	ts->just_woke = 0;
	if (!is_read) {
		c->cpu_at_last_write = c->cpu_ns;
		c->rss_bytes = process_rss_pages(key->tgid, now) << 12; /* 4 KiB pages */
	}
	if (io->op == IO_SENDFILE)
		return;
	if (!is_read && c->status)
		return; /* the status is known: no response bytes to capture */
	__u8 dir = is_read ? PC_DIR_REQUEST : PC_DIR_RESPONSE;
	struct pc_data *copy = NULL;
	if (capture(c, io, ret, dir, is_read ? capture_req_bytes : capture_resp_bytes, &copy))
		c->flags |= is_read ? PC_F_REQ_TRUNCATED : PC_F_RESP_TRUNCATED;
	if (check_101)
		c->h2_upgrade = h2c_answered(copy, io, ret);
}

/* ---- syscall handlers -------------------------------------------------------------------- */

static __always_inline int on_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	long fd = ctx->ret;
	if (fd < 0)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct sock *sk = sock_of_fd(task, fd);
	if (!sk || !is_inet_tcp(sk))
		return 0;

	__u16 local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	if (!admit(task, tgid, local_port, cgroup_id)) {
		count(PC_CNT_CONN_FILTERED);
		return 0;
	}
	__u8 one = 1;
	add_serving_process(tgid);
	bpf_map_update_elem(&listen_ports, &local_port, &one, BPF_ANY);

	struct pc_conn_key key = { .tgid = tgid, .fd = fd };
	bpf_map_delete_elem(&ignored_fds, &key);
	/* An entry left under this fd means we missed its close (close_range, dup2): flush it. */
	struct conn_state *stale = bpf_map_lookup_elem(&conns, &key);
	if (stale) {
		if (stale->role == ROLE_SERVER && stale->phase != PHASE_IDLE &&
		    stale->phase != PHASE_FLUSHED)
			emit_request(&key, stale, PC_F_CONN_CLOSED);
		count(PC_CNT_CONN_REPLACED);
	}

	struct conn_state c = {};
	c.role = ROLE_SERVER;
	c.conn_id = next_conn_id();
	c.cgroup_id = cgroup_id;
	c.sk = (__u64)sk;
	c.from_start = 1;
	read_sock_addrs(sk, &c);
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	bpf_probe_read_kernel_str(c.comm, sizeof(c.comm), &leader->comm);

	if (bpf_map_update_elem(&conns, &key, &c, BPF_ANY)) {
		table_full(&key, false); /* counted from its first request */
		return 0;
	}
	count(PC_CNT_CONN_ACCEPTED);
	return 0;
}

/* A process that listens on a monitored port serves requests: track its outbound calls from
 * now on, including pools it opens before its first accept. */
SEC("tracepoint/syscalls/sys_enter_listen")
int sys_enter_listen(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct sock *sk = sock_of_fd(task, (__u32)ctx->args[0]);
	if (!sk || !is_inet_tcp(sk))
		return 0;
	__u16 local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u8 one = 1;
	bpf_map_update_elem(&listen_ports, &local_port, &one, BPF_ANY);
	if (admit(task, tgid, local_port, bpf_get_current_cgroup_id()))
		add_serving_process(tgid);
	return 0;
}

/*
 * The arguments of the syscall now exiting, and false when they are unknown. Normally read
 * from the registers the task entered with (the syscall ABI leaves them unchanged; arm64 keeps
 * the first one in orig_x0), so no program runs at entry and no map carries them to the exit.
 * Kernels without bpf_task_pt_regs (< 5.15) save them at entry instead (save_args()).
 * `flags_arg` is the 1-based argument holding MSG_* flags (0: none).
 */
static __always_inline bool syscall_args(struct io_call *io, __u8 op, int flags_arg, __u32 tid)
{
	if (args_at_enter) {
		struct io_call *saved = bpf_map_lookup_elem(&io_args, &tid);
		if (!saved || saved->op != op)
			return false;
		*io = *saved;
		return true;
	}
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	io->op = op;
	io->fd = (__u32)PT_REGS_PARM1_SYSCALL(regs);
	if (op != IO_SENDFILE) /* sendfile's first argument is out_fd; no payload capture */
		io->arg = PT_REGS_PARM2_SYSCALL(regs);
	if (flags_arg == 4)
		io->msg_flags = PT_REGS_PARM4_SYSCALL(regs);
	else if (flags_arg == 3)
		io->msg_flags = PT_REGS_PARM3_SYSCALL(regs);
	return true;
}

/* Entry of a read/write syscall, on kernels where syscall_args() cannot read the registers at
 * exit. Only serving processes' syscalls are saved. */
static __always_inline int save_args(struct trace_event_raw_sys_enter *ctx, __u8 op, int flags_arg)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!is_serving(tgid))
		return 0;
	__u32 tid = (__u32)pid_tgid;
	struct io_call io = { .op = op, .fd = (__u32)ctx->args[0] };
	if (op != IO_SENDFILE)
		io.arg = ctx->args[1];
	if (flags_arg == 4)
		io.msg_flags = (__u32)ctx->args[3];
	else if (flags_arg == 3)
		io.msg_flags = (__u32)ctx->args[2];
	bpf_map_update_elem(&io_args, &tid, &io, BPF_ANY);
	return 0;
}

/* Exit of every read/write syscall. */
static __always_inline int on_io_exit(struct trace_event_raw_sys_exit *ctx, __u8 op, int flags_arg)
{
	long ret = ctx->ret;
	if (ret <= 0)
		return 0; /* EAGAIN, EOF, errors: no bytes, no boundary */
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	/* Every tracked connection belongs to a serving process: the per-CPU memo turns away
	 * the syscalls of every other process on the host. */
	if (!is_serving(tgid))
		return 0;
	__u32 tid = (__u32)pid_tgid;
	struct io_call io = {};
	if (!syscall_args(&io, op, flags_arg, tid))
		return 0;
	if (io.msg_flags & MSG_PEEK)
		return 0; /* peeked bytes are read again later: count them once */

	struct pc_conn_key key = { .tgid = tgid, .fd = io.fd };
	__u64 now = bpf_ktime_get_ns();
	struct conn_state *c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		c = maybe_adopt(&key, op <= IO_RECVMSG, now);
	if (!c)
		return 0; /* not a tracked socket */
	/* The thread's CPU since its last tracked syscall is charged by where it ends: here. */
	struct thread_state *ts = current_thread(tid, now);
	if (!ts)
		return 0;
	bool is_read = op <= IO_RECVMSG;
	/* HTTP/2 (h2.bpf.h), either end: streams, not read/write turns; none of the HTTP/1 rules
	 * apply. One call site, so that its code is in the program once. */
	if (c->proto == CONN_PROTO_H2 || h2_detect(&key, c, &io, ret, is_read, now)) {
		h2_io(ts, &key, c, &io, ret, is_read, tid, now);
		return 0;
	}
	if (c->role == ROLE_SERVER)
		server_io_exit(ts, &key, c, &io, ret, is_read, tid, now);
	else
		client_io_exit(ts, &key, c, &io, ret, is_read, tid, now);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int sys_exit_accept(struct trace_event_raw_sys_exit *ctx) { return on_accept_exit(ctx); }

SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept4(struct trace_event_raw_sys_exit *ctx) { return on_accept_exit(ctx); }

/* One program per syscall: a tracepoint program can't be shared across events. */
SEC("tracepoint/syscalls/sys_exit_read")
int sys_exit_read(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_READ, 0); }
SEC("tracepoint/syscalls/sys_exit_readv")
int sys_exit_readv(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_READV, 0); }
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int sys_exit_recvfrom(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_READ, 4); }
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int sys_exit_recvmsg(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_RECVMSG, 3); }
SEC("tracepoint/syscalls/sys_exit_write")
int sys_exit_write(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_WRITE, 0); }
SEC("tracepoint/syscalls/sys_exit_writev")
int sys_exit_writev(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_WRITEV, 0); }
SEC("tracepoint/syscalls/sys_exit_sendto")
int sys_exit_sendto(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_WRITE, 0); }
SEC("tracepoint/syscalls/sys_exit_sendmsg")
int sys_exit_sendmsg(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_SENDMSG, 0); }
SEC("tracepoint/syscalls/sys_exit_sendfile64")
int sys_exit_sendfile64(struct trace_event_raw_sys_exit *ctx) { return on_io_exit(ctx, IO_SENDFILE, 0); }

/* Argument savers for kernels without bpf_task_pt_regs; the loader attaches these only there. */
SEC("tracepoint/syscalls/sys_enter_read")
int args_enter_read(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_READ, 0); }
SEC("tracepoint/syscalls/sys_enter_readv")
int args_enter_readv(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_READV, 0); }
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int args_enter_recvfrom(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_READ, 4); }
SEC("tracepoint/syscalls/sys_enter_recvmsg")
int args_enter_recvmsg(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_RECVMSG, 3); }
SEC("tracepoint/syscalls/sys_enter_write")
int args_enter_write(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_WRITE, 0); }
SEC("tracepoint/syscalls/sys_enter_writev")
int args_enter_writev(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_WRITEV, 0); }
SEC("tracepoint/syscalls/sys_enter_sendto")
int args_enter_sendto(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_WRITE, 0); }
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int args_enter_sendmsg(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_SENDMSG, 0); }
SEC("tracepoint/syscalls/sys_enter_sendfile64")
int args_enter_sendfile64(struct trace_event_raw_sys_enter *ctx) { return save_args(ctx, IO_SENDFILE, 0); }

SEC("tracepoint/syscalls/sys_enter_close")
int sys_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pc_conn_key key = { .tgid = pid_tgid >> 32, .fd = (__u32)ctx->args[0] };
	/* Only serving processes have tracked or ignored fds: one small lookup for everyone else. */
	if (!is_serving(key.tgid))
		return 0;
	struct conn_state *c = bpf_map_lookup_elem(&conns, &key);
	if (!c) {
		bpf_map_delete_elem(&ignored_fds, &key);
		return 0;
	}
	if (c->proto == CONN_PROTO_H2) {
		h2_close(&key, c, bpf_ktime_get_ns());
		if (c->role == ROLE_CLIENT && c->from_start)
			forget_tuple(c);
	} else if (c->role == ROLE_SERVER) {
		if (c->phase == PHASE_READING) {
			__u32 tid = (__u32)pid_tgid;
			response_started(c, bpf_map_lookup_elem(&threads, &tid), tid);
		}
		if (c->phase == PHASE_READING || c->phase == PHASE_WRITING)
			emit_request(&key, c, PC_F_CONN_CLOSED);
	} else {
		if (c->phase != PHASE_IDLE && !c->emitted)
			emit_dependency(&key, c, PC_DF_CONN_CLOSED);
		if (c->from_start)
			forget_tuple(c);
	}
	bpf_map_delete_elem(&conns, &key);
	return 0;
}
