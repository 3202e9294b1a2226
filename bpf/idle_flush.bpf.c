/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Idle flush: a request is normally reported when the next one starts on its connection or
 * the connection closes. On an idle keep-alive connection that can be much later, so every
 * few hundred ms the loader calls prctl(PC_FLUSH_PRCTL, idle_ns), an option no kernel knows
 * (it fails with EINVAL); a tracepoint program then reports every request whose response
 * has been quiet for idle_ns. A syscall tracepoint rather than a uprobe: attaching uprobes
 * needs CAP_SYS_ADMIN, the agent runs with CAP_BPF and CAP_PERFMON.
 * It visits the connections in flush_set (flush_set.bpf.h), not the whole connection map,
 * unless one found that set full: then every connection, once.
 * Two variants, one attached (the loader probes bpf_for_each_map_elem, 5.13):
 *   idle_flush_walk   - walks the map in the kernel;
 *   idle_flush_listed - flushes the connections the loader listed in "flush_list" (it reads
 *                       the keys of flush_set, or of conns after an overflow, from
 *                       userspace), PC_FLUSH_LIST_MAX per call.
 */

#include "maps.bpf.h"
#include "core_fixes.bpf.h"
#include "request.bpf.h"
#include "flush_set.bpf.h"
#include "flush_due.bpf.h"

struct flush_ctx {
	__u64 now;
	__u64 idle_ns;
};

static __always_inline void flush_conn_if_idle(struct pc_conn_key *key, struct conn_state *c,
					       struct flush_ctx *fc)
{
	if (c->role != ROLE_SERVER || *(volatile __u8 *)&c->phase != PHASE_WRITING || c->seq == 0)
		return;
	/* The phase first, then the clock: a write sets them in the other order. */
	asm volatile("" ::: "memory");
	if (!pc_flush_due(fc->now, *(volatile __u64 *)&c->end_ns, fc->idle_ns))
		return;
	/* No atomics: if the server reads at this very moment, the request may still be emitted
	 * twice (userspace then keeps the later numbers); a record torn by that read is dropped. */
	if (!emit_request(key, c, PC_F_IDLE_FLUSH | EMIT_FROM_FLUSH))
		return;
	c->phase = PHASE_FLUSHED;
	count(PC_CNT_IDLE_FLUSHES);
}

/* Flush `c` if idle, and keep its flush_set membership in step with its phase. */
static __always_inline void visit(struct pc_conn_key *key, struct conn_state *c, struct flush_ctx *fc)
{
	flush_conn_if_idle(key, c, fc);
	if (c->role != ROLE_SERVER)
		return;
	if (c->phase == PHASE_WRITING && c->seq)
		watch_for_idle(key, c); /* after an overflow: joins now */
	else if (c->in_flush_set)
		unwatch(key, c); /* flushed, or reading its next request */
}

/* bpf_for_each_map_elem over conns (after an overflow). */
static long visit_conn(struct bpf_map *map, struct pc_conn_key *key, struct conn_state *c,
		       struct flush_ctx *fc)
{
	visit(key, c, fc);
	return 0;
}

/* bpf_for_each_map_elem over flush_set (deleting the visited entry is allowed). */
static long visit_watched(struct bpf_map *map, struct pc_conn_key *key, __u64 *conn_id,
			  struct flush_ctx *fc)
{
	struct conn_state *c = bpf_map_lookup_elem(&conns, key);
	if (!c || c->conn_id != *conn_id) {
		/* Closed, or its fd now holds another connection (which joins by itself). */
		bpf_map_delete_elem(&flush_set, key);
		return 0;
	}
	visit(key, c, fc);
	return 0;
}

/*
 * The whole connection map, after an overflow. A function of its own: inline, the compiler
 * merges the two bpf_for_each_map_elem calls into one call instruction fed either map, which
 * 6.1's verifier refuses ("tail_call abusing map_ptr").
 */
static __noinline int visit_all(struct flush_ctx *fc)
{
	bpf_for_each_map_elem(&conns, visit_conn, fc, 0);
	return 0;
}

/* Was flush_set full since the last flush? Cleared: a connection that finds it full during
 * this flush sets it again. */
static __always_inline bool take_overflow(void)
{
	__u32 zero = 0;
	__u32 *overflow = bpf_map_lookup_elem(&flush_overflow, &zero);
	if (!overflow || !*overflow)
		return false;
	*overflow = 0;
	return true;
}

/*
 * __per_cpu_offset[cpu] for every possible CPU, once: the address of a per-CPU map element
 * on a CPU minus the map's per-CPU base pointer (read from struct bpf_array; needs
 * bpf_map_lookup_percpu_elem, 5.19). Lets process_rss_pages() sum per-CPU counters, which
 * exist from 6.2 on; before, this is dead code (and the helper may be missing).
 */
static __always_inline void find_percpu_offsets(void)
{
	if (bpf_core_type_exists(struct mm_rss_stat___pre62))
		return;
	__u32 zero = 0;
	struct cpu_offsets *cpus = bpf_map_lookup_elem(&percpu_offsets, &zero);
	struct probe_scratch *s = bpf_map_lookup_elem(&probe_scratch, &zero);
	if (!cpus || cpus->n || !s)
		return;
	__u32 off = bpf_core_field_offset(struct bpf_array, pptrs);
	if (off > sizeof(s->b) - 8)
		return;
	/* The map pointer can be read from, but not offset: read the header whole. */
	if (bpf_probe_read_kernel(s->b, off + 8, (void *)&percpu_probe))
		return;
	__u64 base = *(__u64 *)(s->b + off);
	__u32 n = 0;
	for (__u32 cpu = 0; cpu < MAX_CPUS; cpu++) {
		void *elem = bpf_map_lookup_percpu_elem(&percpu_probe, &zero, cpu);
		if (!elem)
			break;
		__u64 addr = 0;
		bpf_probe_read_kernel(&addr, sizeof(addr), &elem); /* the address as a number */
		cpus->off[cpu] = addr - base;
		n = cpu + 1;
	}
	cpus->n = n;
}

/* Is this the loader's flush trigger? Only the loader (always in ignore_pids) may pull it. */
static __always_inline bool is_flush_trigger(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[0] != PC_FLUSH_PRCTL)
		return false; /* everybody else's prctl */
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&ignore_pids, &tgid) != NULL;
}

SEC("tracepoint/syscalls/sys_enter_prctl")
int idle_flush_walk(struct trace_event_raw_sys_enter *ctx)
{
	if (!is_flush_trigger(ctx))
		return 0;
	find_percpu_offsets();
	struct flush_ctx fc = { .now = bpf_ktime_get_ns(), .idle_ns = ctx->args[1] };
	if (take_overflow())
		visit_all(&fc);
	else
		bpf_for_each_map_elem(&flush_set, visit_watched, &fc, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_prctl")
int idle_flush_listed(struct trace_event_raw_sys_enter *ctx)
{
	if (!is_flush_trigger(ctx) || ctx->args[2] != PC_FLUSH_LISTED)
		return 0;
	find_percpu_offsets();
	__u32 zero = 0;
	struct pc_flush_list *list = bpf_map_lookup_elem(&flush_list, &zero);
	if (!list)
		return 0;
	struct flush_ctx fc = { .now = bpf_ktime_get_ns(), .idle_ns = ctx->args[1] };
	for (int i = 0; i < PC_FLUSH_LIST_MAX; i++) {
		if (i >= list->n)
			break;
		struct pc_conn_key key = list->keys[i];
		struct conn_state *c = bpf_map_lookup_elem(&conns, &key);
		if (c)
			visit(&key, c, &fc);
		else
			bpf_map_delete_elem(&flush_set, &key); /* closed */
	}
	return 0;
}
