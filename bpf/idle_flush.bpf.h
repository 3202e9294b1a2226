/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Idle flush: a request is normally reported when the next one starts on its connection or
 * the connection closes. On an idle keep-alive connection that can be much later, so the
 * loader calls perfcatch_flush_idle() in its own binary every few hundred ms; this uprobe
 * then reports every request whose response has been quiet for idle_ns. Needs
 * bpf_for_each_map_elem (5.13); on older kernels the loader runs without it.
 */
#ifndef __PC_IDLE_FLUSH_BPF_H
#define __PC_IDLE_FLUSH_BPF_H

#include "maps.bpf.h"
#include "request_tracker.bpf.h"

struct flush_ctx {
	__u64 now;
	__u64 idle_ns;
};

static long flush_if_idle(struct bpf_map *map, struct conn_key *key, struct conn_state *c,
			  struct flush_ctx *fc)
{
	if (c->role != ROLE_SERVER || c->phase != PHASE_WRITING || c->seq == 0)
		return 0;
	if (fc->now - c->end_ns < fc->idle_ns)
		return 0;
	/* No atomics: if the server reads at this very moment, the request may be emitted twice,
	 * and userspace keeps the last record of a conn_id/seq. */
	emit_request(key, c, PC_F_IDLE_FLUSH);
	c->phase = PHASE_FLUSHED;
	count(PC_CNT_IDLE_FLUSHES);
	return 0;
}

/* Attached by the loader to its own perfcatch_flush_idle(idle_ns). */
SEC("uprobe/perfcatch_flush_idle")
int BPF_KPROBE(perfcatch_flush_idle, __u64 idle_ns)
{
	struct flush_ctx fc = { .now = bpf_ktime_get_ns(), .idle_ns = idle_ns };
	bpf_for_each_map_elem(&conns, flush_if_idle, &fc, 0);
	return 0;
}

#endif /* __PC_IDLE_FLUSH_BPF_H */
