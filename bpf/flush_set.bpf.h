/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The connections the idle flush visits (map flush_set): a server connection joins when its
 * response starts and leaves when the flush reports it or finds it reading again. Keep-alive
 * connections that serve often stay in it, so the hot path pays one test of
 * c->in_flush_set per write, and an insert only after a connection's request was flushed.
 */
#ifndef __PC_FLUSH_SET_BPF_H
#define __PC_FLUSH_SET_BPF_H

#include "maps.bpf.h"

/* `c` (on `key`) is writing a response: make sure the idle flush visits it. */
static __always_inline void watch_for_idle(struct pc_conn_key *key, struct conn_state *c)
{
	if (c->in_flush_set)
		return;
	if (!bpf_map_update_elem(&flush_set, key, &c->conn_id, BPF_ANY)) {
		c->in_flush_set = 1;
		return;
	}
	/* No room: the next flush walks every connection instead (and brings this one in). */
	__u32 zero = 0;
	__u32 *overflow = bpf_map_lookup_elem(&flush_overflow, &zero);
	if (overflow)
		*overflow = 1;
}

/* `c` (on `key`; NULL when the connection is gone) no longer needs the idle flush. */
static __always_inline void unwatch(struct pc_conn_key *key, struct conn_state *c)
{
	if (c)
		c->in_flush_set = 0;
	bpf_map_delete_elem(&flush_set, key);
	/* A write on another CPU may have found in_flush_set still set a moment ago. */
	if (c && c->phase == PHASE_WRITING)
		watch_for_idle(key, c);
}

#endif /* __PC_FLUSH_SET_BPF_H */
