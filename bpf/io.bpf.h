/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Payload capture shared by both roles: the first bytes of each direction, as pc_data. */
#ifndef __PC_IO_BPF_H
#define __PC_IO_BPF_H

#include "maps.bpf.h"
#include "ringbuf.bpf.h"

/* Copy up to `len` bytes at user address `ubuf` into one pc_data record. Returns the copy
 * (the per-CPU scratch, valid until the next capture on this CPU), NULL when none was made. */
static __always_inline struct pc_data *emit_data(struct conn_state *c, __u8 direction, __u64 ubuf,
						 __u32 len, __u32 offset)
{
	/* Overload: the loader is behind. Keep the request records (timing, bytes, CPU) and
	 * shed the payloads, the bulk of the bytes; the request is flagged and counted. */
	__u64 unread = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (unread >= shed_capture_bytes) {
		count(PC_CNT_CAPTURE_SHED);
		c->flags |= PC_F_DATA_LOST;
		return NULL;
	}
	__u32 zero = 0;
	struct pc_data *d = bpf_map_lookup_elem(&data_scratch, &zero);
	if (!d)
		return NULL;
	/* Bound the very register the helpers get: 6.1's verifier tracks a bound checked on a
	 * truncated copy, not on the original the compiler then passes ("unbounded memory
	 * access"). The first barrier stops the compiler from reusing the unclamped value; the
	 * second from spilling it before the clamp and passing the reloaded spill (5.10 and 6.1
	 * do not carry a bound learnt later over to an earlier spill). */
	__u64 n = len;
	barrier_var(n);
	if (n > PC_DATA_MAX)
		n = PC_DATA_MAX;
	barrier_var(n);
	if (bpf_probe_read_user(d->data, n, (const void *)ubuf))
		return NULL;
	d->type = PC_REC_DATA;
	d->direction = direction;
	d->_pad0 = 0;
	d->len = n;
	d->conn_id = c->conn_id;
	d->seq = c->seq;
	d->offset = offset;
	if (bpf_ringbuf_output(&events, d, PC_DATA_HDR_SIZE + n, wakeup_flag_for(unread))) {
		count(PC_CNT_RB_DROP_DATA);
		c->flags |= PC_F_DATA_LOST; /* same bit as PC_DF_DATA_LOST */
	}
	return d;
}

/* First user buffer of an I/O op and its usable length. */
static __always_inline __u64 first_buffer(struct io_call *io, __u64 *buf_len)
{
	struct iovec iov = {};
	__u64 iov_ptr = io->arg;
	switch (io->op) {
	case IO_READ:
	case IO_WRITE:
		*buf_len = ~0ULL;
		return io->arg;
	case IO_RECVMSG:
	case IO_SENDMSG:
		if (bpf_probe_read_user(&iov_ptr, sizeof(iov_ptr),
					(void *)(io->arg + __builtin_offsetof(struct user_msghdr, msg_iov))))
			return 0;
		/* fallthrough */
	case IO_READV:
	case IO_WRITEV:
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)iov_ptr))
			return 0;
		*buf_len = iov.iov_len;
		return (__u64)iov.iov_base;
	}
	return 0;
}

/*
 * Capture the head of `ret` transferred bytes in `direction`, within `budget` bytes per
 * request. Returns true when bytes were left out (truncated). `copy`, when not NULL, receives
 * the copy just made (emit_data()).
 */
static __always_inline bool capture(struct conn_state *c, struct io_call *io, __u64 ret,
				    __u8 direction, __u32 budget, struct pc_data **copy)
{
	__u32 done = direction == PC_DIR_REQUEST ? c->req_captured : c->resp_captured;
	if (done >= budget)
		return true;
	__u64 buf_len = 0;
	__u64 buf = first_buffer(io, &buf_len);
	if (!buf)
		return false;
	__u64 want = ret < buf_len ? ret : buf_len;
	__u32 room = budget - done;
	__u32 len = want < room ? (__u32)want : room;
	if (len) {
		struct pc_data *d = emit_data(c, direction, buf, len, done);
		if (copy)
			*copy = d;
		if (direction == PC_DIR_REQUEST)
			c->req_captured = done + len;
		else
			c->resp_captured = done + len;
	}
	return ret > len;
}

/* "HTTP/1.x DDD" and the SP or CRLF after it: the shortest status line read in the kernel. */
#define STATUS_LINE_MIN 14

/*
 * The status code when the buffer written (a server's response) or read (an outbound call's)
 * starts with a final HTTP/1.x status line (code
 * 200-999, then SP or CRLF, as src/http/parse.ts parseResponseHead reads one), else 0. An
 * interim 1xx (100 Continue, an h2c upgrade's 101) or a first write too short to hold the line
 * gives 0, and the response's head is then captured for userspace as before.
 */
static __always_inline __u16 final_response_status(struct io_call *io, long ret)
{
	__u64 buf_len = 0;
	__u64 buf = first_buffer(io, &buf_len);
	char h[16] = {};
	if (!buf || ret < STATUS_LINE_MIN || buf_len < STATUS_LINE_MIN ||
	    bpf_probe_read_user(h, STATUS_LINE_MIN, (void *)buf))
		return 0;
	if (h[0] != 'H' || h[1] != 'T' || h[2] != 'T' || h[3] != 'P' || h[4] != '/' ||
	    h[5] != '1' || h[6] != '.' || (h[7] != '0' && h[7] != '1') || h[8] != ' ')
		return 0;
	__u16 status = 0;
	for (int i = 9; i < 12; i++) {
		if (h[i] < '0' || h[i] > '9')
			return 0;
		status = status * 10 + (h[i] - '0');
	}
	if (!(h[12] == ' ' || (h[12] == '\r' && h[13] == '\n')))
		return 0;
	return status >= 200 ? status : 0;
}

/* Does the written buffer start with an HTTP/1.x status line? */
static __always_inline bool starts_http_response(struct io_call *io)
{
	__u64 buf_len = 0;
	__u64 buf = first_buffer(io, &buf_len);
	char head[7] = {};
	if (!buf || buf_len < sizeof(head) || bpf_probe_read_user(head, sizeof(head), (void *)buf))
		return false;
	return head[0] == 'H' && head[1] == 'T' && head[2] == 'T' && head[3] == 'P' &&
	       head[4] == '/' && head[5] == '1' && head[6] == '.';
}

#endif /* __PC_IO_BPF_H */
