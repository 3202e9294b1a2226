/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A request record: emit_request() closes a request in the kernel and sends it, from the
 * syscall programs (request_tracker.bpf.c) and the idle flush (idle_flush.bpf.c). */
#ifndef __PC_REQUEST_BPF_H
#define __PC_REQUEST_BPF_H

#include "maps.bpf.h"
#include "ringbuf.bpf.h"
#include "dependency.bpf.h"

/* emit_request() flags, never sent: emitted at a pipelined response boundary; emitted by the
 * idle flush from another thread, which must not send a record torn by a concurrent read. */
#define EMIT_AT_RESPONSE_BOUNDARY (1u << 31)
#define EMIT_FROM_FLUSH (1u << 30)
#define EMIT_INTERNAL (EMIT_AT_RESPONSE_BOUNDARY | EMIT_FROM_FLUSH)

/* Is `c` still writing request `seq`? Read after every field was copied: the barrier keeps
 * the compiler from hoisting these loads above the copy. */
static __always_inline bool still_writing(struct conn_state *c, __u32 seq)
{
	asm volatile("" ::: "memory");
	return *(volatile __u32 *)&c->seq == seq && *(volatile __u8 *)&c->phase == PHASE_WRITING;
}

/* Returns false when an idle-flush emission was abandoned (the connection moved on). */
static __always_inline bool emit_request(struct pc_conn_key *key, struct conn_state *c, __u32 flags)
{
	/* Its outbound exchanges first, so that userspace has them when the request arrives. */
	flush_dependencies_of(c);
	if (c->seq == 0)
		return true; /* adopted connection: the first request is only half seen */
	struct pc_request *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(PC_CNT_RB_DROP_REQUEST);
		return true;
	}
	r->type = PC_REC_REQUEST;
	r->flags = (c->flags | flags) & ~EMIT_INTERNAL;
	r->pid = key->tgid;
	r->tid = c->tid;
	r->conn_id = c->conn_id;
	r->cgroup_id = c->cgroup_id;
	r->start_ns = c->start_ns;
	r->end_ns = c->end_ns ? c->end_ns : c->start_ns;
	/* A request's CPU ends at its response's last write (cpu_ns <= its duration on one
	 * thread); what its thread ran after that (the framework finishing the exchange, a GC)
	 * is reported beside it. At a pipelined response boundary that is the next request's
	 * (begin_pipelined_request). */
	__u64 cpu = c->cpu_ns;
	__u64 after_response = c->bytes_sent && cpu > c->cpu_at_last_write ? cpu - c->cpu_at_last_write : 0;
	r->cpu_ns = cpu - after_response;
	r->cpu_after_response_ns = (flags & EMIT_AT_RESPONSE_BOUNDARY) ? 0 : after_response;
	r->bytes_received = c->bytes_received;
	r->bytes_sent = c->bytes_sent;
	r->rss_bytes = c->rss_bytes;
	r->seq = c->seq;
	r->family = c->family;
	r->local_port = c->local_port;
	r->remote_port = c->remote_port;
	r->req_captured = c->req_captured;
	r->resp_captured = c->resp_captured;
	r->status = c->status;
	__builtin_memcpy(r->local_addr, c->local_addr, sizeof(r->local_addr));
	__builtin_memcpy(r->remote_addr, c->remote_addr, sizeof(r->remote_addr));
	__builtin_memcpy(r->comm, c->comm, sizeof(r->comm));
	r->peer_conn_id = c->peer_conn_id;
	/* The idle flush runs on the loader's thread: if the server started the next request
	 * while the record was being filled, the record may mix two requests; drop it (the
	 * server's own read already reported this request). */
	if ((flags & EMIT_FROM_FLUSH) && !still_writing(c, r->seq)) {
		bpf_ringbuf_discard(r, 0);
		return false;
	}
	bpf_ringbuf_submit(r, wakeup_flag());
	count(PC_CNT_REQUESTS);
	return true;
}

#endif /* __PC_REQUEST_BPF_H */
