/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * HTTP/2 over cleartext TCP, both ends (issue 12). A server connection is HTTP/2 when
 *   - its first bytes read are the client preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (prior
 *     knowledge), or its first bytes written, before any read, are a SETTINGS frame (the
 *     server's preface, which h2 servers send without waiting for the client's); or
 *   - it answered an HTTP/1.1 request "101 Switching Protocols" (`Upgrade: h2c`) and the next
 *     syscall is such a read or write (PC_F_H2_UPGRADE: that request becomes stream 1); or
 *   - it was adopted (open before the loader started) and its first read starts with a frame
 *     header no HTTP/1 request can start with ("mid-way": PC_F_H2_MIDWAY).
 * An outbound connection is HTTP/2 when its first bytes written are the preface, or, adopted,
 * its first bytes either way are a frame header (PC_F_H2_CLIENT).
 * On such a connection the HTTP/1 rules (a read after a write starts the next request or
 * exchange) are off: request_tracker.bpf.c hands every read and write to h2_io(), which sends
 * what the bytes were as pc_h2_io records (perfcatch.h), and userspace assembles streams
 * (src/http2/). Directions are the protocol's, not the syscall's: the walk's direction 0 and
 * PC_DIR_REQUEST are what the client sends, whichever end we watch.
 *
 * The walk: per direction, the connection remembers where the current frame ends (`left`
 * payload bytes to come, `keep` of them to capture) and the frame header bytes seen so far, so
 * frames may span syscalls and iovecs. Every 9-byte frame header is captured, and the payload
 * of every frame but DATA up to PC_H2_PAYLOAD_MAX bytes (HEADERS, CONTINUATION, SETTINGS,
 * RST_STREAM, ... are small); DATA payloads are skipped by length, never copied. A walk that
 * cannot go on (PC_H2_STEPS steps in one syscall, an unreadable buffer) stops for good on that
 * direction: its bytes are still counted, and every later record says PC_H2F_LOST. A record
 * the full ring buffer refused does not stop it: the walk still knows where frames are, so the
 * frame under way is skipped ("dark"), the next frame header is captured again, and the next
 * record says PC_H2F_GAP (h2_flush): userspace resynchronises there instead of losing the
 * connection.
 *
 * CPU: the thread's on-CPU time since its previous tracked syscall (cpu.bpf.h's pending
 * segment) goes into the syscall's record instead of to an HTTP/1 request; userspace charges
 * it to the streams whose frames the syscall carried, or that were open (src/h2/).
 */
#ifndef __PC_H2_BPF_H
#define __PC_H2_BPF_H

#include "maps.bpf.h"
#include "ringbuf.bpf.h"
#include "io.bpf.h"
#include "sock.bpf.h"

#define CONN_PROTO_H2 1
#define H2_FRAME_HEADER 9
#define H2_PREFACE_LEN 24
#define H2_TYPE_DATA 0
#define H2_TYPE_HEADERS 1
#define H2_TYPE_SETTINGS 4
#define H2_TYPE_PUSH_PROMISE 5
#define H2_TYPE_CONTINUATION 9

/* h2_dir.gap: after a record of the direction was lost. */
#define H2_GAP 1       /* the next record sent says PC_H2F_GAP */
#define H2_GAP_HPACK 2 /* ... and PC_H2F_GAP_HPACK */
#define H2_DARK 4      /* the frame under way lost its start: skipped, not captured */
#define H2_GAP_OTHER 8 /* the other direction lost records: the next record sent says
			* PC_H2F_GAP_OTHER (streams that end before its own GAP record
			* must not be reported as whole) */

/* One direction of an HTTP/2 connection, between syscalls. */
struct h2_dir {
	__u32 left;     /* payload bytes of the current frame still to come */
	__u32 keep;     /* of those, how many to capture */
	__u8 hdr_fill;  /* bytes of the next frame header seen so far (0..8) */
	__u8 lost;      /* the walk stopped: bytes are only counted from now on */
	__u8 gap;       /* H2_GAP_* */
	__u8 _pad;
	__u8 hdr[24];   /* that frame header (room for a 9-byte read at any fill) */
	__u32 max_client_sid; /* the highest client-initiated stream id among its frame headers,
			       * dark ones included (the close record says it) */
	__u32 _pad2;
};

struct h2_state {
	struct h2_dir dir[2]; /* 0: what the client sends, 1: what the server sends */
};

/* The record being filled. data[] is followed by PC_H2_DATA_MAX bytes of slack, so that the
 * verifier can bound a copy at any fill without knowing how the two relate. */
/* Where the walk of the current syscall is, between chunks (h2_walk_chunk). */
struct h2_cursor {
	__u64 conn_id;
	__u64 base;       /* the buffer being walked: [base, base + cur), `off` done */
	__u64 cur;
	__u64 off;
	__u64 unassigned; /* bytes of the syscall beyond the buffers seen so far */
	__u64 iov_ptr;    /* the next struct iovec (vectored syscalls) */
	__u8 vec;
	__u8 dir;         /* index in h2_state.dir */
	__u8 block;       /* the record being filled holds header-block or SETTINGS bytes */
	__u8 _pad;
	__s32 result;     /* how the walk ended (H2_WALK_*) */
};

/* The syscall being detected (h2_detect_call's arguments: a global function takes scalars). */
struct h2_call {
	struct pc_conn_key key;
	struct io_call io;
	__s64 ret;
	__u64 now;
	__u64 w[3];     /* the first bytes read or written */
	struct tuple_key t;
};

struct h2_scratch {
	struct h2_call call;
	struct iovec iov; /* the iovec being read (kept off the walk's stack) */
	struct h2_cursor k;
	struct pc_h2_io rec;
	__u8 slack[PC_H2_DATA_MAX];
};

/* HTTP/2 connections by conn_id (inserted at detection, deleted at close). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct h2_state);
} h2_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_scratch);
} h2_scratch SEC(".maps");

/* The client preface, as little-endian words: "PRI * HT" "TP/2.0\r\n" "\r\nSM\r\n\r\n". */
#define H2_PREFACE_W0 0x5448202a20495250ULL
#define H2_PREFACE_W1 0x0a0d302e322f5054ULL
#define H2_PREFACE_W2 0x0a0d0a0d4d530a0dULL

/* The first `n` (<= 24) bytes of the first buffer of `io` into w; false when fewer moved. */
static __always_inline bool h2_head(struct io_call *io, long ret, __u64 *w, __u32 n)
{
	__u64 buf_len = 0;
	__u64 buf = first_buffer(io, &buf_len);
	return buf && ret >= n && buf_len >= n && !bpf_probe_read_user(w, n, (void *)buf);
}

/* Could these 9 bytes be a frame header a peer sends? (No HTTP/1 request line starts like
 * one: a method's first three letters read as a length beyond 16384.) */
static __always_inline bool h2_plausible_header(__u8 *h)
{
	__u32 len = ((__u32)h[0] << 16) | ((__u32)h[1] << 8) | h[2];
	__u8 type = h[3];
	__u32 sid = ((__u32)(h[5] & 0x7f) << 24) | ((__u32)h[6] << 16) | ((__u32)h[7] << 8) | h[8];
	if (len > 16384 || type > 9 || (h[5] & 0x80))
		return false;
	if (type == 4 || type == 6 || type == 7)
		return sid == 0;
	if (type == 8)
		return true;
	return sid != 0;
}

/* A connection's HTTP/2 state, fresh (never written). */
static struct h2_state h2_state_zero;

/* "HTTP/1.1 101 " as little-endian words: the status line of an h2c upgrade's answer. */
#define H2_101_W0 0x312e312f50545448ULL /* "HTTP/1.1" */
#define H2_101_W1 0x31303120U           /* " 101" */

/*
 * The detection proper, for the syscall in the scratch's `call`: 1 when the connection is
 * HTTP/2 (switched and announced), else 0. A global function, with its own stack frame: the
 * syscall programs' frames are already near the 512 bytes a call chain may use on 5.10.
 *   - an outbound connection: its first write is the preface (prior knowledge), or, adopted,
 *     its first bytes either way are a frame header;
 *   - a server connection: its first read is the preface, or its first write (before any
 *     read) a SETTINGS frame; after a 101 answer (h2c upgrade), the same at the next read or
 *     write; adopted, its first read is a frame header.
 */
__noinline int h2_detect_call(__u32 is_read)
{
	__u32 zero = 0;
	struct h2_scratch *s = bpf_map_lookup_elem(&h2_scratch, &zero);
	if (!s)
		return 0;
	struct conn_state *c = bpf_map_lookup_elem(&conns, &s->call.key);
	if (!c)
		return 0;
	/* What the record will say, kept in one value: the frame is at its 5.10 limit. */
	__u32 flags = c->role == ROLE_CLIENT ? PC_F_H2_CLIENT : 0;
	if (!flags && c->h2_upgrade && c->phase == PHASE_WRITING)
		flags = PC_F_H2_UPGRADE;
	__u8 *h = (__u8 *)s->call.w;
	c->h2_upgrade = 0; /* an upgrade switches at the syscall after the 101, or not at all */
	if (c->from_start) {
		if (is_read || flags == PC_F_H2_CLIENT) {
			if (!h2_head(&s->call.io, s->call.ret, s->call.w, H2_PREFACE_LEN) ||
			    s->call.w[0] != H2_PREFACE_W0 || s->call.w[1] != H2_PREFACE_W1 ||
			    s->call.w[2] != H2_PREFACE_W2)
				return 0;
		} else {
			if (!h2_head(&s->call.io, s->call.ret, s->call.w, H2_FRAME_HEADER) ||
			    h[3] != H2_TYPE_SETTINGS || h[4] != 0 || !h2_plausible_header(h))
				return 0;
		}
	} else {
		if (!h2_head(&s->call.io, s->call.ret, s->call.w, H2_FRAME_HEADER) || !h2_plausible_header(h))
			return 0;
		flags |= PC_F_H2_MIDWAY;
	}
	if (bpf_map_update_elem(&h2_conns, &c->conn_id, &h2_state_zero, BPF_ANY))
		return 0;
	struct h2_state *st = bpf_map_lookup_elem(&h2_conns, &c->conn_id);
	if (!st)
		return 0;
	if (!(flags & PC_F_H2_MIDWAY)) {
		/* The client's bytes begin with the 24-byte preface: captured like a payload. */
		st->dir[0].left = H2_PREFACE_LEN;
		st->dir[0].keep = H2_PREFACE_LEN;
	}
	c->proto = CONN_PROTO_H2;
	/* The upgraded request is reported as stream 1, never as an HTTP/1 request (the idle
	 * flush and close only send a request that is being written). */
	c->phase = PHASE_IDLE;
	count(PC_CNT_H2_CONNS);
	struct pc_request *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		/* Userspace learns of the connection from its first pc_h2_io, without addresses;
		 * an upgraded request is lost with the record. */
		if (flags & PC_F_H2_UPGRADE)
			count(PC_CNT_RB_DROP_REQUEST);
		return 1;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->type = PC_REC_H2_CONN;
	r->flags = flags;
	r->pid = s->call.key.tgid;
	r->tid = (__u32)bpf_get_current_pid_tgid();
	r->conn_id = c->conn_id;
	r->cgroup_id = c->cgroup_id;
	r->start_ns = s->call.now;
	r->end_ns = s->call.now;
	if (flags & PC_F_H2_UPGRADE) {
		r->tid = c->tid;
		r->start_ns = c->start_ns;
		r->end_ns = c->end_ns ? c->end_ns : c->start_ns;
		r->seq = c->seq;
		r->bytes_received = c->bytes_received;
		r->bytes_sent = c->bytes_sent;
		r->req_captured = c->req_captured;
		r->resp_captured = c->resp_captured;
	}
	r->family = c->family;
	r->local_port = c->local_port;
	r->remote_port = c->remote_port;
	__builtin_memcpy(r->local_addr, c->local_addr, sizeof(r->local_addr));
	__builtin_memcpy(r->remote_addr, c->remote_addr, sizeof(r->remote_addr));
	__builtin_memcpy(r->comm, c->comm, sizeof(r->comm));
	/* The caller's client connection, when it is a tracked process on this host. */
	if (c->from_start && !(flags & PC_F_H2_CLIENT)) {
		tuple_of(c, false, &s->call.t);
		__u64 *peer = bpf_map_lookup_elem(&client_tuples, &s->call.t);
		r->peer_conn_id = peer ? *peer : 0;
	}
	bpf_ringbuf_submit(r, wakeup_flag());
	return 1;
}

/*
 * Is this connection HTTP/2? Called for a connection not (yet) known to be, before the HTTP/1
 * rules see the syscall; on a yes the connection is switched and announced (a PC_REC_H2_CONN
 * record with its addresses), and the syscall goes to h2_io(). Only a connection's first
 * syscall, and a server's first after a 101 answer (h2c_answered()), get past the checks here.
 */
static __always_inline bool h2_detect(struct pc_conn_key *key, struct conn_state *c,
				      struct io_call *io, long ret, bool is_read, __u64 now)
{
	if (io->op == IO_SENDFILE)
		return false;
	if (c->role == ROLE_CLIENT) {
		/* The client speaks first: its first write (any first syscall, adopted). */
		if (c->seq != 0 || c->phase != PHASE_IDLE || (c->from_start && is_read))
			return false;
	} else if (c->h2_upgrade) {
		if (c->phase != PHASE_WRITING)
			return false;
	} else if (c->seq != 0) {
		return false; /* only before its first HTTP/1 request (a 101: h2c_answered()) */
	} else if (c->from_start ? (c->bytes_received || c->phase != PHASE_IDLE) : !is_read) {
		return false;
	}
	__u32 zero = 0;
	struct h2_scratch *s = bpf_map_lookup_elem(&h2_scratch, &zero);
	if (!s)
		return false;
	s->call.key = *key;
	s->call.io = *io;
	s->call.ret = ret;
	s->call.now = now;
	return h2_detect_call(is_read) == 1;
}

/*
 * A server's HTTP/1 response begins (its first write, `ret` >= 12 bytes): does it answer "101
 * Switching Protocols", after which an `Upgrade: h2c` connection speaks HTTP/2 (h2_detect()
 * at the next syscall)? Read from the response capture's copy of the same bytes when it made
 * one (`copy`), so that the user buffer is read once; else (payloads shed, capture off) here.
 */
static __always_inline bool h2c_answered(struct pc_data *copy, struct io_call *io, long ret)
{
	__u64 w[2] = {};
	if (copy && copy->len >= 12)
		__builtin_memcpy(w, copy->data, 12);
	else if (!h2_head(io, ret, w, 12))
		return false;
	return w[0] == H2_101_W0 && (__u32)w[1] == H2_101_W1;
}

/* The gap flags of direction `d`, for the record about to be filled. */
static __always_inline __u8 h2_gap_flags(struct h2_dir *d)
{
	__u8 f = d->gap & H2_GAP_OTHER ? PC_H2F_GAP_OTHER : 0;
	if (d->gap & H2_GAP)
		f |= PC_H2F_GAP | (d->gap & H2_GAP_HPACK ? PC_H2F_GAP_HPACK : 0);
	return f;
}

static __always_inline bool h2_block_type(__u8 type)
{
	return type == H2_TYPE_HEADERS || type == H2_TYPE_CONTINUATION || type == H2_TYPE_SETTINGS ||
	       type == H2_TYPE_PUSH_PROMISE;
}

/*
 * Send the record being filled; the next one continues the same syscall. `d`: its direction's
 * walk state, `o` the other direction's (NULL when gone). A record the ring refused leaves a
 * gap: the next one of each direction says so, and the next one of this direction carries
 * the syscall's CPU and total in its stead (same part number).
 */
static __always_inline bool h2_flush(struct h2_scratch *s, struct h2_dir *d, struct h2_dir *o, bool more)
{
	struct pc_h2_io *r = &s->rec;
	if (more)
		r->flags |= PC_H2F_MORE;
	else
		r->flags &= ~PC_H2F_MORE;
	__u64 n = r->data_len;
	barrier_var(n);
	if (n > PC_H2_DATA_MAX)
		n = PC_H2_DATA_MAX;
	long err = bpf_ringbuf_output(&events, r, PC_H2_HDR_SIZE + n, wakeup_flag());
	r->n_runs = 0;
	r->data_len = 0;
	if (err) {
		count(PC_CNT_RB_DROP_H2);
		if (o)
			o->gap |= H2_GAP_OTHER;
		if (d) {
			d->gap |= H2_GAP;
			if (s->k.block || (r->flags & PC_H2F_GAP_HPACK))
				d->gap |= H2_GAP_HPACK;
			/* The start of the frame under way was in the lost record. */
			if (d->left || d->hdr_fill) {
				d->gap |= H2_DARK;
				d->keep = 0;
			}
		}
	} else {
		r->part += 1;
		r->cpu_ns = 0;
		r->total = 0;
		if (d && (r->flags & PC_H2F_GAP))
			d->gap &= ~(H2_GAP | H2_GAP_HPACK);
		if (d && (r->flags & PC_H2F_GAP_OTHER))
			d->gap &= ~H2_GAP_OTHER;
	}
	s->k.block = 0;
	r->flags &= ~(PC_H2F_GAP | PC_H2F_GAP_HPACK | PC_H2F_GAP_OTHER);
	if (d)
		r->flags |= h2_gap_flags(d);
	return !err;
}

/* The run to add `captured` (or skipped) bytes to, opened if need be; -1 when runs[] is full. */
static __always_inline int h2_run(struct pc_h2_io *r, bool captured)
{
	__u32 n = r->n_runs;
	if (n > PC_H2_RUNS_MAX)
		return -1;
	if (n) {
		struct pc_h2_run *last = &r->runs[(n - 1) & (PC_H2_RUNS_MAX - 1)];
		if (!captured || !last->skipped)
			return n - 1;
	}
	if (n >= PC_H2_RUNS_MAX)
		return -1;
	r->runs[n & (PC_H2_RUNS_MAX - 1)].captured = 0;
	r->runs[n & (PC_H2_RUNS_MAX - 1)].skipped = 0;
	r->n_runs = n + 1;
	return n;
}

static __always_inline void h2_add_skipped(struct pc_h2_io *r, __u64 n)
{
	int i = h2_run(r, false);
	if (i >= 0)
		r->runs[i & (PC_H2_RUNS_MAX - 1)].skipped += n;
}

/* Whether the record has room for a captured run of up to `want` more bytes. */
static __always_inline bool h2_room(struct pc_h2_io *r)
{
	if (r->data_len >= PC_H2_DATA_MAX)
		return false;
	__u32 n = r->n_runs;
	if (n >= PC_H2_RUNS_MAX) {
		/* Full of runs: room only if the last run can still grow. */
		return n == PC_H2_RUNS_MAX && !r->runs[(n - 1) & (PC_H2_RUNS_MAX - 1)].skipped;
	}
	return true;
}

/* Copy `n` (1..PC_H2_DATA_MAX - data_len) bytes at user `src` into the record as captured. */
static __always_inline bool h2_capture(struct h2_scratch *s, __u64 src, __u64 n)
{
	struct pc_h2_io *r = &s->rec;
	__u32 at = r->data_len & (PC_H2_DATA_MAX - 1);
	barrier_var(n);
	if (n > PC_H2_DATA_MAX)
		n = PC_H2_DATA_MAX;
	if (!n)
		return true;
	if (bpf_probe_read_user(&r->data[at], n, (void *)src))
		return false;
	int i = h2_run(r, true);
	if (i < 0)
		return false;
	r->runs[i & (PC_H2_RUNS_MAX - 1)].captured += n;
	r->data_len = at + n;
	return true;
}

static __always_inline __u64 min3(__u64 a, __u64 b, __u64 c)
{
	__u64 m = a < b ? a : b;
	return m < c ? m : c;
}

#define H2_CHUNK_STEPS 32
#define H2_CHUNKS (PC_H2_STEPS / H2_CHUNK_STEPS)
enum { H2_WALK_DONE = 0, H2_WALK_MORE = 1, H2_WALK_STOP = 2 };

/* One step of the walk; true when the walk of this syscall ends (k->result says how). */
static __always_inline bool h2_step(struct h2_scratch *s, struct h2_cursor *k, struct h2_dir *d,
				    struct h2_dir *o, struct pc_h2_io *r)
{
	k->result = H2_WALK_STOP;
	if (k->off >= k->cur) {
		if (!k->unassigned) {
			k->result = H2_WALK_DONE; /* every byte walked */
			return true;
		}
		if (!k->vec)
			return true;
		if (bpf_probe_read_user(&s->iov, sizeof(s->iov), (void *)k->iov_ptr))
			return true;
		k->iov_ptr += sizeof(s->iov);
		k->base = (__u64)s->iov.iov_base;
		k->cur = s->iov.iov_len < k->unassigned ? s->iov.iov_len : k->unassigned;
		k->unassigned -= k->cur;
		k->off = 0;
		return false;
	}
	__u64 avail = k->cur - k->off;
	if (d->left) {
		if (!d->keep) {
			__u64 n = d->left < avail ? d->left : avail;
			h2_add_skipped(r, n);
			d->left -= n;
			k->off += n;
			return false;
		}
		if (!h2_room(r) && !h2_flush(s, d, o, true))
			return false; /* lost: the rest of the frame is dark now */
		__u64 n = min3(d->keep, avail, PC_H2_DATA_MAX - r->data_len);
		if (!h2_capture(s, k->base + k->off, n))
			return true;
		if (h2_block_type(d->hdr[3]))
			k->block = 1;
		d->keep -= n;
		d->left -= n;
		k->off += n;
		return false;
	}
	/* A frame header, or the rest of one. */
	if (!h2_room(r))
		h2_flush(s, d, o, true);
	__u32 fill = d->hdr_fill;
	if (fill >= H2_FRAME_HEADER)
		fill = 0;
	if (!fill)
		d->gap &= ~H2_DARK;
	__u64 n = min3(H2_FRAME_HEADER - fill, avail, PC_H2_DATA_MAX - r->data_len);
	barrier_var(n);
	if (n > H2_FRAME_HEADER)
		n = H2_FRAME_HEADER;
	if (!n || bpf_probe_read_user(&d->hdr[fill & 15], n, (void *)(k->base + k->off)))
		return true;
	if (d->gap & H2_DARK)
		h2_add_skipped(r, n);
	else if (!h2_capture(s, k->base + k->off, n))
		return true;
	k->off += n;
	fill += n;
	if (fill < H2_FRAME_HEADER) {
		d->hdr_fill = fill;
		return false;
	}
	d->hdr_fill = 0;
	__u32 sid = ((__u32)(d->hdr[5] & 0x7f) << 24) | ((__u32)d->hdr[6] << 16) | ((__u32)d->hdr[7] << 8) | d->hdr[8];
	if ((sid & 1) && sid > d->max_client_sid)
		d->max_client_sid = sid;
	__u32 len = ((__u32)d->hdr[0] << 16) | ((__u32)d->hdr[1] << 8) | d->hdr[2];
	d->left = len;
	if ((d->gap & H2_DARK) || d->hdr[3] == H2_TYPE_DATA) {
		/* Most frames are DATA: their payload in this buffer is skipped in the same step. */
		d->keep = 0;
		__u64 m = len < k->cur - k->off ? len : k->cur - k->off;
		h2_add_skipped(r, m);
		d->left -= m;
		k->off += m;
	} else {
		if (h2_block_type(d->hdr[3]))
			k->block = 1;
		d->keep = len < PC_H2_PAYLOAD_MAX ? len : PC_H2_PAYLOAD_MAX;
		if (len > PC_H2_PAYLOAD_MAX)
			count_n(PC_CNT_H2_UNCAPTURED, len - PC_H2_PAYLOAD_MAX);
	}
	return false;
}

/*
 * Up to H2_CHUNK_STEPS steps of the walk (a frame header, a payload part or an iovec each).
 * A global function: the verifier checks it once, not once per step of its caller's loop (a
 * 512-step loop inline exceeds its budget), so its state is in the per-CPU scratch.
 */
__noinline int h2_walk_chunk(__u32 dir)
{
	__u32 zero = 0;
	struct h2_scratch *s = bpf_map_lookup_elem(&h2_scratch, &zero);
	if (!s)
		return H2_WALK_STOP;
	struct h2_state *st = bpf_map_lookup_elem(&h2_conns, &s->k.conn_id);
	if (!st)
		return H2_WALK_STOP;
	struct h2_dir *d = &st->dir[dir & 1];
	struct h2_dir *o = &st->dir[(dir ^ 1) & 1];
	for (int i = 0; i < H2_CHUNK_STEPS; i++) {
		/* Everything lives in the maps, nothing in registers across steps: the verifier then
		 * sees one state per step, not one per path through the steps before. The pointers
		 * are made opaque each step, so that the compiler recomputes the field addresses
		 * rather than keeping them on the stack (the frame must stay small: 5.10 allows
		 * 512 bytes for a whole call chain, and the syscall programs use 424). */
		barrier();
		barrier_var(s);
		barrier_var(d);
		barrier_var(o);
		if (h2_step(s, &s->k, d, o, &s->rec))
			return s->k.result;
	}
	return H2_WALK_MORE;
}

/* Walk the `ret` bytes of the syscall `io` through direction `dir` of `st`, filling records. */
static __always_inline void h2_walk(struct h2_scratch *s, struct h2_dir *d, __u8 dir, __u64 conn_id,
				    struct io_call *io, __u64 ret)
{
	struct h2_cursor *k = &s->k;
	k->conn_id = conn_id;
	k->dir = dir;
	k->vec = io->op != IO_READ && io->op != IO_WRITE;
	k->base = 0;
	k->cur = 0;
	k->off = 0;
	k->unassigned = ret;
	k->iov_ptr = 0;
	if (d->lost || io->op == IO_SENDFILE)
		goto rest;
	if (!k->vec) {
		k->base = io->arg;
		k->cur = ret;
		k->unassigned = 0;
	} else if (io->op == IO_RECVMSG || io->op == IO_SENDMSG) {
		__u64 p = 0;
		if (bpf_probe_read_user(&p, sizeof(p),
					(void *)(io->arg + __builtin_offsetof(struct user_msghdr, msg_iov))))
			goto lost;
		k->iov_ptr = p;
	} else {
		k->iov_ptr = io->arg;
	}
	for (int i = 0; i < H2_CHUNKS; i++) {
		int rc = h2_walk_chunk(dir);
		if (rc == H2_WALK_DONE)
			return;
		if (rc != H2_WALK_MORE)
			break;
	}
lost:
	/* Out of steps, or a buffer we could not read: the rest is only counted, from now on. */
	d->lost = 1;
	count(PC_CNT_H2_WALK_LOST);
rest:
	if (k->cur > k->off)
		h2_add_skipped(&s->rec, k->cur - k->off);
	if (k->unassigned)
		h2_add_skipped(&s->rec, k->unassigned);
}

/* A read or write of `ret` bytes on an HTTP/2 connection, server or outbound. */
static __always_inline void h2_io(struct thread_state *ts, struct pc_conn_key *key,
				  struct conn_state *c, struct io_call *io, long ret, bool is_read,
				  __u32 tid, __u64 now)
{
	__u32 zero = 0;
	struct h2_scratch *s = bpf_map_lookup_elem(&h2_scratch, &zero);
	struct h2_state *st = bpf_map_lookup_elem(&h2_conns, &c->conn_id);
	if (!s)
		return;
	struct pc_h2_io *r = &s->rec;
	bool client = c->role == ROLE_CLIENT;
	/* Direction 0 is what the client sends: a server reads it, an outbound connection writes it. */
	__u8 dir = is_read != client ? 0 : 1;
	r->type = PC_REC_H2_IO;
	r->direction = dir == 0 ? PC_DIR_REQUEST : PC_DIR_RESPONSE;
	r->flags = client ? PC_H2F_CLIENT : 0;
	r->n_runs = 0;
	r->pid = key->tgid;
	r->tid = tid;
	r->conn_id = c->conn_id;
	r->ts_ns = now;
	/* The segment that ends here is the streams' (userspace splits it); no HTTP/1 request
	 * of this thread is its owner any more, and the next segment ends at its next HTTP/2
	 * syscall, across sleeps (resource_tracker.bpf.c). Except on an outbound connection
	 * while the thread serves an HTTP/1 request (an Express handler calling gRPC): that
	 * request made the call, and as for an HTTP/1 call the CPU is its own; the segment goes
	 * on, charged by the HTTP/1 rules where it ends. */
	if (client && !ts->owner_closed && live_owner(ts)) {
		r->cpu_ns = 0;
	} else {
		r->cpu_ns = ts->pending_ns;
		ts->pending_ns = 0;
		ts->owner_closed = OWNER_H2;
	}
	r->total = ret;
	r->data_len = 0;
	r->part = 0;
	if (!st) {
		/* Evicted from h2_conns: the walk state is gone. */
		r->flags |= PC_H2F_LOST;
		h2_add_skipped(r, ret);
		if (!h2_flush(s, NULL, NULL, false))
			ts->pending_ns += r->cpu_ns; /* to the next syscall's streams, not lost */
		return;
	}
	struct h2_dir *d = &st->dir[dir & 1];
	struct h2_dir *o = &st->dir[(dir ^ 1) & 1];
	r->flags |= h2_gap_flags(d);
	s->k.block = 0;
	h2_walk(s, d, dir, c->conn_id, io, ret);
	if (d->lost)
		r->flags |= PC_H2F_LOST;
	if (!h2_flush(s, d, o, false))
		ts->pending_ns += r->cpu_ns; /* to the next syscall's streams, not lost */
}

/* The process closes an HTTP/2 connection: its open streams end there. */
static __always_inline void h2_close(struct pc_conn_key *key, struct conn_state *c, __u64 now)
{
	__u32 max_sid = 0;
	__u8 gap = 0;
	struct h2_state *st = bpf_map_lookup_elem(&h2_conns, &c->conn_id);
	if (st) {
		max_sid = st->dir[0].max_client_sid > st->dir[1].max_client_sid ? st->dir[0].max_client_sid
										  : st->dir[1].max_client_sid;
		/* Records lost since a direction's last one: no later record will say so. */
		gap = (st->dir[0].gap | st->dir[1].gap) & H2_GAP;
	}
	bpf_map_delete_elem(&h2_conns, &c->conn_id);
	struct pc_h2_io *r = bpf_ringbuf_reserve(&events, PC_H2_HDR_SIZE, 0);
	if (!r) {
		count(PC_CNT_RB_DROP_H2);
		return;
	}
	__builtin_memset(r, 0, PC_H2_HDR_SIZE);
	r->type = PC_REC_H2_IO;
	r->flags = PC_H2F_CLOSED | (c->role == ROLE_CLIENT ? PC_H2F_CLIENT : 0) | (gap ? PC_H2F_GAP : 0);
	r->pid = key->tgid;
	r->tid = (__u32)bpf_get_current_pid_tgid();
	r->conn_id = c->conn_id;
	r->ts_ns = now;
	r->total = max_sid;
	bpf_ringbuf_submit(r, wakeup_flag());
}

#endif /* __PC_H2_BPF_H */
