/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Which processes serve (map server_tgids): the first test of every hook that runs for the
 * whole host (each read/write exit, epoll wait and context switch). The same few processes
 * come back again and again on a CPU (the load generator, the agent, the server, the kernel's
 * threads), and a lookup in the hash costs a cold bucket at low rates. So each CPU remembers
 * whether the last processes it saw serve, valid until server_tgids gains or loses an entry
 * (server_tgids_gen): a per-CPU slot instead of the hash. The loader seeds
 * server_tgids before any program is attached (loader/src/seed.rs), when no CPU remembers
 * anything yet. An LRU eviction changes no generation: a process remembered as serving then
 * finds no thread or connection of its own, which every caller checks next.
 */
#ifndef __PC_SERVING_BPF_H
#define __PC_SERVING_BPF_H

#include "maps.bpf.h"

static __always_inline __u32 *serving_gen(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&server_tgids_gen, &zero);
}

/* Does `tgid` serve? (Its struct server_process, where needed, is in server_tgids.) */
static __always_inline bool is_serving(__u32 tgid)
{
	if (!tgid)
		return false; /* the idle task */
	__u32 zero = 0;
	struct serving_memo *memo = bpf_map_lookup_elem(&serving_memo, &zero);
	__u32 *gen = serving_gen();
	if (!memo || !gen)
		return bpf_map_lookup_elem(&server_tgids, &tgid) != NULL;
	__u32 now_gen = *gen << 1;
	/* Fibonacci hashing: the top bits of tgid * 2^32/phi spread neighbouring pids. */
	struct serving_memo_slot *m = &memo->slot[(tgid * 2654435769U) >> (32 - SERVING_MEMO_BITS)];
	if (m->tgid == tgid && (m->gen & ~1U) == now_gen)
		return m->gen & 1;
	bool serving = bpf_map_lookup_elem(&server_tgids, &tgid) != NULL;
	m->tgid = tgid;
	m->gen = now_gen | serving;
	return serving;
}

static __always_inline void serving_changed(void)
{
	__u32 *gen = serving_gen();
	if (gen)
		__sync_fetch_and_add(gen, 1);
}

/* `tgid` serves from now on (created unless it was already). */
static __always_inline void add_serving_process(__u32 tgid)
{
	struct server_process fresh = {};
	if (bpf_map_update_elem(&server_tgids, &tgid, &fresh, BPF_NOEXIST))
		return; /* already serving (or no room) */
	serving_changed(); /* after the insert: a CPU that sees the new generation finds it */
}

/* `tgid` no longer serves (the filters turned it away). */
static __always_inline void remove_serving_process(__u32 tgid)
{
	if (!bpf_map_delete_elem(&server_tgids, &tgid))
		serving_changed();
}

#endif /* __PC_SERVING_BPF_H */
