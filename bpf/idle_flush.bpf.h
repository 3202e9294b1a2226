/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Idle flush: a request is normally reported when the next one starts on its connection or
 * the connection closes. On an idle keep-alive connection that can be much later, so every
 * few hundred ms the loader calls prctl(PC_FLUSH_PRCTL, idle_ns), an option no kernel knows
 * (it fails with EINVAL); this tracepoint program then reports every request whose response
 * has been quiet for idle_ns. A syscall tracepoint rather than a uprobe: attaching uprobes
 * needs CAP_SYS_ADMIN, the agent runs with CAP_BPF and CAP_PERFMON. Needs
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
	/* No atomics: if the server reads at this very moment, the request may still be emitted
	 * twice (userspace then keeps the later numbers); a record torn by that read is dropped. */
	if (!emit_request(key, c, PC_F_IDLE_FLUSH | EMIT_FROM_FLUSH))
		return 0;
	c->phase = PHASE_FLUSHED;
	count(PC_CNT_IDLE_FLUSHES);
	return 0;
}

/*
 * __per_cpu_offset[cpu] for every possible CPU, once: the address of a per-CPU map element
 * on a CPU minus the map's per-CPU base pointer (read from struct bpf_array; needs
 * bpf_map_lookup_percpu_elem, 5.19). Lets process_rss_pages() sum per-CPU counters.
 */
static __always_inline void find_percpu_offsets(void)
{
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

SEC("tracepoint/syscalls/sys_enter_prctl")
int perfcatch_flush_idle(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[0] != PC_FLUSH_PRCTL)
		return 0; /* everybody else's prctl */
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&ignore_pids, &tgid))
		return 0; /* only the loader (always in ignore_pids) may trigger it */
	__u64 idle_ns = ctx->args[1];
	find_percpu_offsets();
	struct flush_ctx fc = { .now = bpf_ktime_get_ns(), .idle_ns = idle_ns };
	bpf_for_each_map_elem(&conns, flush_if_idle, &fc, 0);
	return 0;
}

#endif /* __PC_IDLE_FLUSH_BPF_H */
