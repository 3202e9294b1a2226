/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* A serving process's RSS, read in the kernel at each response write (request_tracker.bpf.c)
 * exactly as /proc/<pid>/status computes it. */
#ifndef __PC_RSS_BPF_H
#define __PC_RSS_BPF_H

#include "maps.bpf.h"
#include "core_fixes.bpf.h"

/*
 * The exact sum reads every CPU's part of three counters: cheap on small hosts, ~200 reads on
 * 64 CPUs. Up to RSS_EXACT_ALWAYS_CPUS CPUs every write gets it; beyond, a process's exact
 * sum is reused for RSS_EXACT_EVERY_NS, moved by the global counts, which miss what the
 * per-CPU parts gained meanwhile (reusing it for 100 us already put a Go server's worst
 * error at 4.5% against 1.4% exact).
 */
#define RSS_EXACT_ALWAYS_CPUS 8
#define RSS_EXACT_EVERY_NS 100000ULL

/* Global count of one mm->rss_stat[] counter (direct BTF loads, no helper calls). */
static __always_inline __s64 rss_global(struct mm_struct *mm, int idx)
{
	return mm->rss_stat[idx].count;
}

/* The same counter with every CPU's not-yet-folded delta (percpu_counter_sum, what
 * /proc/<pid>/status shows); per-CPU offsets come from idle_flush.bpf.c. */
static __always_inline __s64 rss_exact(struct mm_struct *mm, int idx, struct cpu_offsets *cpus)
{
	__s64 v = rss_global(mm, idx);
	__u64 counters = (__u64)mm->rss_stat[idx].counters;
	if (!counters)
		return v;
	for (int cpu = 0; cpu < MAX_CPUS; cpu++) {
		if (cpu >= cpus->n)
			break;
		__s32 d = 0;
		bpf_probe_read_kernel(&d, sizeof(d), (void *)(counters + cpus->off[cpu]));
		v += d;
	}
	return v;
}

static __always_inline __u64 clamp_pages(__s64 file, __s64 anon, __s64 shmem)
{
	return (file > 0 ? file : 0) + (anon > 0 ? anon : 0) + (shmem > 0 ? shmem : 0);
}

static __always_inline __s64 rss_atomic(struct mm_struct___pre62 *mm, int idx)
{
	__s64 v = 0;
	bpf_core_read(&v, sizeof(v), &mm->rss_stat.count[idx].counter);
	return v;
}

/*
 * The calling process's VmRSS in pages: file + anon + shmem, each clamped at zero.
 * MM_FILEPAGES = 0, MM_ANONPAGES = 1, MM_SHMEMPAGES = 3 (stable enum). Which layout the kernel
 * has is a CO-RE constant: the other branch is dead code the verifier never walks, so the
 * >= 6.2 branch's bpf_get_current_task_btf (5.11) costs older kernels nothing.
 * Only the reuse on hosts with more than RSS_EXACT_ALWAYS_CPUS CPUs keeps state (the
 * process's struct server_process): elsewhere the response write skips that hash lookup,
 * a cold entry at moderate rates. 0: unknown.
 */
static __always_inline __u64 process_rss_pages(__u32 tgid, __u64 now)
{
	if (bpf_core_type_exists(struct mm_rss_stat___pre62)) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct mm_struct___pre62 *mm = (void *)BPF_CORE_READ(task, mm);
		if (!mm)
			return 0;
		return clamp_pages(rss_atomic(mm, 0), rss_atomic(mm, 1), rss_atomic(mm, 3));
	}
	struct mm_struct *mm = bpf_get_current_task_btf()->mm;
	if (!mm)
		return 0;
	__u32 zero = 0;
	struct cpu_offsets *cpus = bpf_map_lookup_elem(&percpu_offsets, &zero);
	if (cpus && cpus->n && cpus->n <= RSS_EXACT_ALWAYS_CPUS)
		return clamp_pages(rss_exact(mm, 0, cpus), rss_exact(mm, 1, cpus), rss_exact(mm, 3, cpus));
	__u64 global = clamp_pages(rss_global(mm, 0), rss_global(mm, 1), rss_global(mm, 3));
	struct server_process *proc = bpf_map_lookup_elem(&server_tgids, &tgid);
	if (!proc)
		return global;
	if (cpus && cpus->n && now - proc->rss_exact_ns >= RSS_EXACT_EVERY_NS) {
		proc->rss_pages = clamp_pages(rss_exact(mm, 0, cpus), rss_exact(mm, 1, cpus),
					      rss_exact(mm, 3, cpus));
		proc->rss_exact_ns = now;
	} else {
		proc->rss_pages += global - proc->rss_count_base;
	}
	proc->rss_count_base = global;
	return proc->rss_pages;
}

#endif /* __PC_RSS_BPF_H */
