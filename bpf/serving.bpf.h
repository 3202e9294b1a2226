/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Which processes serve (map server_tgids): the first test of every hook that runs for the
 * whole host (each read/write exit, epoll wait and context switch). Most calls come from
 * processes that serve nothing, again and again on the same CPU (the load generator, the
 * agent, the kernel's threads), and a miss in the hash costs a cold bucket at low rates. So
 * each CPU remembers a few processes it found not serving, valid until the next insert into
 * server_tgids (server_tgids_gen): one per-CPU cache line instead of the hash. The loader
 * seeds server_tgids before any program is attached (loader/src/seed.rs), when no CPU
 * remembers anything yet.
 */
#ifndef __PC_SERVING_BPF_H
#define __PC_SERVING_BPF_H

#include "maps.bpf.h"

static __always_inline __u32 *serving_gen(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&server_tgids_gen, &zero);
}

/* The serving process `tgid`, or NULL when it serves nothing. */
static __always_inline struct server_process *serving_process(__u32 tgid)
{
	if (!tgid)
		return NULL; /* the idle task */
	__u32 zero = 0;
	struct not_serving *memo = bpf_map_lookup_elem(&not_serving_memo, &zero);
	__u32 *gen = serving_gen();
	if (!memo || !gen)
		return bpf_map_lookup_elem(&server_tgids, &tgid);
	__u32 now_gen = *gen;
	__u32 slot = tgid & (NOT_SERVING_SLOTS - 1);
	if (memo->tgid[slot] == tgid && memo->gen[slot] == now_gen)
		return NULL;
	struct server_process *proc = bpf_map_lookup_elem(&server_tgids, &tgid);
	if (!proc) {
		memo->tgid[slot] = tgid;
		memo->gen[slot] = now_gen;
	}
	return proc;
}

/* `tgid` serves from now on (created unless it was already). */
static __always_inline void add_serving_process(__u32 tgid)
{
	struct server_process fresh = {};
	if (bpf_map_update_elem(&server_tgids, &tgid, &fresh, BPF_NOEXIST))
		return; /* already serving (or no room) */
	/* After the insert: a CPU that sees the new generation finds the process. */
	__u32 *gen = serving_gen();
	if (gen)
		__sync_fetch_and_add(gen, 1);
}

#endif /* __PC_SERVING_BPF_H */
