/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Outbound calls made while serving a request: TCP connections opened by (or found in) a
 * process that serves monitored connections. Each exchange on such a connection (a write
 * after a read, or the first write, up to its last read) is attributed to the request the
 * writing thread owns (owner-thread rule) and becomes a pc_dependency record.
 *
 * Exchanges are emitted when the next one starts, when the connection closes, or when their
 * parent request ends (through its dep_keys), whichever comes first, so a parent's
 * dependencies normally reach userspace before the parent.
 *
 * The read/write/close programs of both roles are in request_tracker.bpf.c; connect() and
 * the handshake in dependency_tracker.bpf.c.
 */
#ifndef __PC_DEPENDENCY_BPF_H
#define __PC_DEPENDENCY_BPF_H

#include "maps.bpf.h"
#include "serving.bpf.h"
#include "ringbuf.bpf.h"
#include "sock.bpf.h"
#include "io.bpf.h"
#include "admission.bpf.h"
#include "cpu.bpf.h"

static __noinline void emit_dependency(struct pc_conn_key *key, struct conn_state *c, __u32 flags)
{
	if (!c->parent_conn_id) {
		count(PC_CNT_DEP_UNATTRIBUTED);
		c->emitted = 1;
		return;
	}
	struct pc_dependency *d = bpf_ringbuf_reserve(&events, sizeof(*d), 0);
	if (!d) {
		count(PC_CNT_RB_DROP_DEPENDENCY);
		return;
	}
	d->type = PC_REC_DEPENDENCY;
	d->flags = c->flags | flags | (c->caller_inferred ? PC_DF_CALLER_INFERRED : 0);
	d->pid = key->tgid;
	d->tid = c->tid;
	d->conn_id = c->conn_id;
	d->parent_conn_id = c->parent_conn_id;
	d->start_ns = c->start_ns;
	d->end_ns = c->end_ns ? c->end_ns : c->start_ns;
	d->connect_start_ns = c->seq == 1 ? c->connect_start_ns : 0;
	d->connect_ns = c->seq == 1 ? c->connect_ns : 0;
	d->bytes_sent = c->bytes_sent;
	d->bytes_received = c->bytes_received;
	d->seq = c->seq;
	d->parent_seq = c->parent_seq;
	d->family = c->family;
	d->local_port = c->local_port;
	d->remote_port = c->remote_port;
	d->req_captured = c->req_captured;
	d->resp_captured = c->resp_captured;
	d->status = c->status;
	d->_pad0[0] = 0;
	d->_pad0[1] = 0;
	__builtin_memcpy(d->local_addr, c->local_addr, sizeof(d->local_addr));
	__builtin_memcpy(d->remote_addr, c->remote_addr, sizeof(d->remote_addr));
	bpf_ringbuf_submit(d, wakeup_flag());
	c->emitted = 1;
	count(PC_CNT_DEPENDENCIES);
}

/* Called when a server request ends: send the exchanges it made that are still open. */
static __always_inline void flush_dependencies_of(struct conn_state *server)
{
	for (int i = 0; i < MAX_DEPS_PER_REQUEST; i++) {
		if (i >= server->dep_count)
			break;
		__u64 packed = server->dep_keys[i];
		struct pc_conn_key key = { .tgid = packed >> 32, .fd = (__u32)packed };
		struct conn_state *c = bpf_map_lookup_elem(&conns, &key);
		if (c && c->role == ROLE_CLIENT && !c->emitted && c->phase != PHASE_IDLE &&
		    c->parent_conn_id == server->conn_id && c->parent_seq == server->seq)
			emit_dependency(&key, c, PC_DF_AT_PARENT_END);
	}
}

/* A new outbound connection (or one found already open) of a tracked process. In a full
 * table it is not tracked, and tried again at its next I/O (maybe_adopt). */
static __always_inline struct conn_state *track_client(struct pc_conn_key *key, struct sock *sk,
						       bool from_start, __u64 now)
{
	struct conn_state c = {};
	c.role = ROLE_CLIENT;
	c.conn_id = next_conn_id();
	c.sk = (__u64)sk;
	c.from_start = from_start;
	c.flags = from_start ? 0 : PC_DF_ADOPTED;
	c.connect_start_ns = from_start ? now : 0;
	c.cgroup_id = bpf_get_current_cgroup_id();
	read_sock_addrs(sk, &c);
	if (bpf_map_update_elem(&conns, key, &c, BPF_ANY))
		return NULL;
	count(PC_CNT_CLIENT_CONNS);
	return bpf_map_lookup_elem(&conns, key);
}

/* Lets the accepting side of a local connection find this side. */
static __always_inline void register_tuple(struct conn_state *c)
{
	struct tuple_key t;
	tuple_of(c, true, &t);
	bpf_map_update_elem(&client_tuples, &t, &c->conn_id, BPF_ANY);
}

static __always_inline void forget_tuple(struct conn_state *c)
{
	struct tuple_key t;
	tuple_of(c, true, &t);
	bpf_map_delete_elem(&client_tuples, &t);
}

/*
 * The request an outbound action of this thread (a connect, or a call's first write) serves
 * (cpu.bpf.h). Where the thread's code acts in the turn that read it (Node: a
 * handler runs in its read's callback, a continuation right after its read): the owner when
 * the thread has just read its upstream response, else the oldest woken request, else the
 * oldest fresh one. Where code waits its turn (asyncio: a handler two turns after its read, a
 * continuation one): the request whose turn comes first (fresh first on a tie), by the turns
 * learned from its responses. Else the owner. Sets *pkey, and *inferred when the choice was
 * among several (it follows the order the runtime runs code in: the kernel cannot know); NULL
 * when the thread serves nothing, or at a connect (`at_connect`) that cannot tell which of
 * several fresh requests opened it.
 */
static __always_inline struct conn_state *caller_of(struct thread_state *ts, struct pc_conn_key *pkey,
						    __u8 *inferred, bool at_connect)
{
	__u32 waiting = ts->woken.live + ts->fresh.live;
	struct conn_state *owner = live_owner(ts);
	bool same_turn = !ts->turns_fresh && !ts->turns_woken;
	if (same_turn && ts->just_woke && owner && owner->role == ROLE_SERVER &&
	    owner->phase == PHASE_READING) {
		ts->just_woke = 0;
		*pkey = ts->owner;
		*inferred = waiting > 1 || ts->in_flight > 1;
		acted(ts, owner->conn_id, owner->seq);
		return owner;
	}
	if (!same_turn) {
		struct conn_state *t = take_next_turn(ts, pkey, at_connect);
		if (t) {
			*inferred = waiting > 1 || ts->in_flight > 1;
			return t;
		}
	}
	struct conn_state *w = fifo_pop(&ts->woken, pkey);
	if (w) {
		*inferred = waiting > 1 || ts->in_flight > 1;
		fifo_drop(&ts->fresh, w->conn_id, w->seq);
		return w;
	}
	if (at_connect && ts->fresh.live > 1)
		return NULL;
	struct conn_state *f = fifo_pop(&ts->fresh, pkey);
	if (f) {
		*inferred = waiting > 1 || ts->in_flight > 1;
		return f;
	}
	*inferred = ts->in_flight > 1;
	if (owner && owner->role == ROLE_SERVER) {
		*pkey = ts->owner;
		return owner;
	}
	return NULL;
}

/* Make `server` (on `skey`) the parent of the client connection's current exchange. */
static __always_inline void set_parent(struct conn_state *c, struct pc_conn_key *client_key,
				       struct pc_conn_key *skey, struct conn_state *server)
{
	c->parent = *skey;
	c->parent_conn_id = server->conn_id;
	c->parent_seq = server->seq;
	__u8 n = server->dep_count;
	if (n < MAX_DEPS_PER_REQUEST) {
		server->dep_keys[n & (MAX_DEPS_PER_REQUEST - 1)] = pack_key(client_key);
		server->dep_count = n + 1;
	}
}

/* The live parent request of the client connection's current exchange, or NULL. */
static __always_inline struct conn_state *parent_of(struct conn_state *c)
{
	if (!c->parent_conn_id)
		return NULL;
	struct conn_state *p = bpf_map_lookup_elem(&conns, &c->parent);
	return is_live(p, c->parent_conn_id, c->parent_seq) && p->role == ROLE_SERVER ? p : NULL;
}

static __always_inline void begin_exchange(struct thread_state *ts, struct pc_conn_key *key,
					   struct conn_state *c, __u32 tid, __u64 now)
{
	if (c->phase != PHASE_IDLE && !c->emitted)
		emit_dependency(key, c, 0);
	c->seq += 1;
	c->tid = tid;
	c->start_ns = now;
	c->end_ns = 0;
	c->bytes_sent = 0;
	c->bytes_received = 0;
	c->req_captured = 0;
	c->resp_captured = 0;
	c->status = 0;
	c->emitted = 0;
	c->flags &= PC_DF_ADOPTED;
	if (c->seq == 1 && c->from_start)
		c->flags |= PC_DF_NEW_CONNECTION;
	/* A new connection's first exchange serves the request that called connect(). */
	if (c->seq == 1 && c->parent_at_connect && parent_of(c))
		return;
	c->parent_conn_id = 0;
	struct pc_conn_key skey = {};
	struct conn_state *server = caller_of(ts, &skey, &c->caller_inferred, false);
	if (server)
		set_parent(c, key, &skey, server);
}

/* Read/write exit on an outbound connection. */
static __always_inline void client_io_exit(struct thread_state *ts, struct pc_conn_key *key,
					   struct conn_state *c, struct io_call *io, long ret,
					   bool is_read, __u32 tid, __u64 now)
{
	if (is_read) {
		/* Server-first protocols (e.g. a database greeting) start with a read. */
		if (c->phase == PHASE_IDLE)
			begin_exchange(ts, key, c, tid, now);
		/* The response's first read: its status spares capturing its head. */
		if (c->phase != PHASE_READING && io->op != IO_SENDFILE)
			c->status = final_response_status(io, ret);
		c->phase = PHASE_READING;
		c->bytes_received += ret;
		c->end_ns = now;
	} else {
		if (c->phase != PHASE_WRITING)
			begin_exchange(ts, key, c, tid, now);
		c->phase = PHASE_WRITING;
		c->bytes_sent += ret;
		if (!c->end_ns)
			c->end_ns = now;
	}
	/* The segment that ends in this call's write is its caller's: the caller acted. The one
	 * that ends in a read is the code that ran before (owner rule); the caller's code runs
	 * once the runtime gets to it (woken). */
	struct conn_state *parent = parent_of(c);
	if (!parent) {
		if (!charge_owner(ts, live_owner(ts), now, key->tgid))
			charge_nobody(ts, key->tgid);
	} else if (!is_read) {
		charge(ts, parent, false, now, key->tgid);
		acted(ts, parent->conn_id, parent->seq);
		set_owner(ts, &c->parent, parent);
	} else {
		if (!charge_owner(ts, live_owner(ts), now, key->tgid))
			charge_nobody(ts, key->tgid);
		fifo_drop(&ts->fresh, parent->conn_id, parent->seq);
		fifo_push(&ts->woken, &c->parent, parent, ts->loop_turn);
		set_owner(ts, &c->parent, parent);
	}
	ts->just_woke = is_read && parent;
	/* An exchange with no request to serve is never sent (emit_dependency): nor are its bytes. */
	if (io->op != IO_SENDFILE && !c->emitted && c->parent_conn_id && !(is_read && c->status))
		capture(c, io, ret, is_read ? PC_DIR_RESPONSE : PC_DIR_REQUEST, capture_dep_bytes, NULL);
}

/* An fd of a tracked process that we have not seen: an outbound or inbound TCP connection
 * opened before tracking began? Found sockets are adopted, through the same filters as
 * accept(); anything else is remembered as ignored until it is closed. A connection is
 * inbound when its local port is one something listens on (listen(), accept(), and what the
 * loader found listening when it started): never taken for an outbound one. */
static __always_inline struct conn_state *maybe_adopt(struct pc_conn_key *key, bool is_read,
						       __u64 now)
{
	__u8 *ignored = bpf_map_lookup_elem(&ignored_fds, key); /* the caller checked server_tgids */
	if (ignored) {
		/* An inbound connection the full table had no room for: each request that begins
		 * (a read after a write) tries again below, and is counted lost if it finds none. */
		if (!(*ignored & IGN_TABLE_FULL))
			return NULL;
		if (!is_read) {
			*ignored &= ~IGN_IN_REQUEST;
			return NULL;
		}
		if (*ignored & IGN_IN_REQUEST)
			return NULL; /* more of a request already counted */
	}
	__u8 one = 1;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct sock *sk = sock_of_fd(task, key->fd);
	if (!sk || !is_inet_tcp(sk) || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_ESTABLISHED) {
		if (ignored)
			table_full(key, true); /* a request on it as the peer closes: still lost */
		else
			bpf_map_update_elem(&ignored_fds, key, &one, BPF_ANY);
		return NULL;
	}
	__u16 local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u32 zero = 0;
	struct pc_filter_cfg *cfg = bpf_map_lookup_elem(&filter_cfg, &zero);
	if (!admit_process(task, key->tgid, bpf_get_current_cgroup_id(), cfg)) {
		/* Seeded as a server by the loader, or the filters changed: stop looking at it. */
		remove_serving_process(key->tgid);
		return NULL;
	}
	if (ignored || bpf_map_lookup_elem(&listen_ports, &local_port)) {
		if (cfg && cfg->ports_on && !bpf_map_lookup_elem(&filter_ports, &local_port)) {
			count(PC_CNT_CONN_FILTERED);
			bpf_map_update_elem(&ignored_fds, key, &one, BPF_ANY);
			return NULL;
		}
		/* Inbound, accepted before we started: becomes a server conn at its next request. */
		struct conn_state c = {};
		c.role = ROLE_SERVER;
		c.conn_id = next_conn_id();
		c.sk = (__u64)sk;
		c.phase = PHASE_WRITING; /* seq 0: the next read starts request 1 */
		c.cgroup_id = bpf_get_current_cgroup_id();
		read_sock_addrs(sk, &c);
		struct task_struct *leader = BPF_CORE_READ(task, group_leader);
		bpf_probe_read_kernel_str(c.comm, sizeof(c.comm), &leader->comm);
		if (bpf_map_update_elem(&conns, key, &c, BPF_ANY)) {
			table_full(key, is_read); /* a read begins a request */
			return NULL;
		}
		if (ignored)
			bpf_map_delete_elem(&ignored_fds, key); /* room at last: tracked from this request */
		return bpf_map_lookup_elem(&conns, key);
	}
	return track_client(key, sk, false, now);
}

#endif /* __PC_DEPENDENCY_BPF_H */
