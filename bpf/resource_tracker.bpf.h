/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Per-request CPU (owner-thread rule, fed by tp_btf/sched_switch) and process RSS.
 *
 * Each thread that read or wrote a tracked socket has an owner: that connection's current
 * request. On-CPU time between switch-in and switch-out, and up to the moment the owner
 * changes, is charged to the owner. Exact for thread-per-request servers and for event loops
 * whose handlers run synchronously between reading a request and writing its response; work
 * handed to other threads is charged to whatever those threads last served.
 *
 * A request's CPU includes its epilogue after the last write, until the thread next sleeps
 * (a voluntary switch, not a preemption) or serves another request: for an event loop under
 * load the requests' CPU then adds up to the loop's, while work a thread does after waking
 * up again (timers, background jobs) is not charged to the request it served last.
 */
#ifndef __PC_RESOURCE_TRACKER_BPF_H
#define __PC_RESOURCE_TRACKER_BPF_H

#include "maps.bpf.h"

/*
 * Add the thread's on-CPU time since the last charge to its owner `c` (looked up when NULL),
 * and restart the clock. Returns the owner's phase, or PHASE_IDLE when there is no live owner.
 */
static __always_inline __u32 charge_owner(struct thread_state *ts, struct conn_state *c, __u64 now)
{
	if (!c)
		c = bpf_map_lookup_elem(&conns, &ts->owner);
	/* The owner may have been reported (idle flush), or closed: then drop the slice. */
	if (!c || c->conn_id != ts->owner_conn_id || c->seq != ts->owner_seq || c->phase == PHASE_FLUSHED)
		return PHASE_IDLE;
	if (ts->oncpu_since) {
		__sync_fetch_and_add(&c->cpu_ns, now - ts->oncpu_since);
		ts->oncpu_since = now;
	}
	return c->phase;
}

/* Charge whatever the calling thread ran since its last charge to its current owner; `key`
 * and `c` are the connection in hand, usually that owner (saves a lookup). Returns the
 * thread's state (NULL for a thread that never served), for set_owner(). */
static __always_inline struct thread_state *settle_current_thread(__u32 tid, __u64 now,
								  struct pc_conn_key *key,
								  struct conn_state *c)
{
	struct thread_state *ts = bpf_map_lookup_elem(&threads, &tid);
	if (ts) {
		bool same = ts->owner.tgid == key->tgid && ts->owner.fd == key->fd;
		charge_owner(ts, same ? c : NULL, now);
	}
	return ts;
}

/* After settle_current_thread(): make `c` the owner of the calling thread. */
static __always_inline void set_owner(struct thread_state *ts, __u32 tid, struct pc_conn_key *key,
				      struct conn_state *c, __u64 now)
{
	if (!ts) {
		struct thread_state fresh = {
			.owner = *key,
			.owner_conn_id = c->conn_id,
			.owner_seq = c->seq,
			.oncpu_since = now, /* we are running right now */
		};
		bpf_map_update_elem(&threads, &tid, &fresh, BPF_ANY);
		return;
	}
	ts->owner = *key;
	ts->owner_conn_id = c->conn_id;
	ts->owner_seq = c->seq;
	ts->oncpu_since = now;
	ts->owner_closed = 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 prev_tid = prev->pid;
	__u32 next_tid = next->pid;

	/* Only threads that ever served a tracked request are in the map. */
	struct thread_state *ts = bpf_map_lookup_elem(&threads, &prev_tid);
	if (ts) {
		__u32 phase = charge_owner(ts, NULL, now);
		ts->oncpu_since = 0;
		/* Going to sleep once the response has started: the request's work is done. */
		if (!preempt && phase != PHASE_READING)
			ts->owner_closed = 1;
	}
	ts = bpf_map_lookup_elem(&threads, &next_tid);
	if (ts && !ts->owner_closed)
		ts->oncpu_since = now;
	return 0;
}

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
 * /proc/<pid>/status shows); per-CPU offsets come from idle_flush.bpf.h. */
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

/*
 * Kernels before 6.2 keep RSS in atomic counters (struct mm_rss_stat), and /proc reads exactly
 * those: the atomics are the exact value there. The ___pre62 flavours let CO-RE find them.
 */
struct mm_rss_stat___pre62 {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___pre62 {
	struct mm_rss_stat___pre62 rss_stat;
} __attribute__((preserve_access_index));

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
 */
static __always_inline __u64 process_rss_pages(struct server_process *proc, __u64 now)
{
	if (bpf_core_type_exists(struct mm_rss_stat___pre62)) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		struct mm_struct___pre62 *mm = (void *)BPF_CORE_READ(task, mm);
		if (mm)
			proc->rss_pages = clamp_pages(rss_atomic(mm, 0), rss_atomic(mm, 1), rss_atomic(mm, 3));
		return proc->rss_pages;
	}
	struct mm_struct *mm = bpf_get_current_task_btf()->mm;
	if (!mm)
		return proc->rss_pages;
	__u64 global = clamp_pages(rss_global(mm, 0), rss_global(mm, 1), rss_global(mm, 3));
	__u32 zero = 0;
	struct cpu_offsets *cpus = bpf_map_lookup_elem(&percpu_offsets, &zero);
	if (cpus && cpus->n &&
	    (cpus->n <= RSS_EXACT_ALWAYS_CPUS || now - proc->rss_exact_ns >= RSS_EXACT_EVERY_NS)) {
		proc->rss_pages = clamp_pages(rss_exact(mm, 0, cpus), rss_exact(mm, 1, cpus),
					      rss_exact(mm, 3, cpus));
		proc->rss_exact_ns = now;
	} else {
		proc->rss_pages += global - proc->rss_count_base;
	}
	proc->rss_count_base = global;
	return proc->rss_pages;
}

#endif /* __PC_RESOURCE_TRACKER_BPF_H */
