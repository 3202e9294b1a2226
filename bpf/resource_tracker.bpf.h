/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Per-request CPU (owner-thread rule, fed by tp_btf/sched_switch) and process RSS.
 *
 * Each thread that read or wrote a tracked socket has an owner: that connection's current
 * request. On-CPU time between switch-in and switch-out, and up to the moment the owner
 * changes, is charged to the owner. Exact for thread-per-request servers and for event loops
 * whose handlers run synchronously between reading a request and writing its response; work
 * handed to other threads is charged to whatever those threads last served.
 */
#ifndef __PC_RESOURCE_TRACKER_BPF_H
#define __PC_RESOURCE_TRACKER_BPF_H

#include "maps.bpf.h"

/* Add the thread's on-CPU time since the last charge to its owner, and restart the clock. */
static __always_inline void charge_owner(struct thread_state *ts, __u64 now)
{
	if (!ts->oncpu_since)
		return;
	__u64 delta = now - ts->oncpu_since;
	ts->oncpu_since = now;

	struct conn_state *c = bpf_map_lookup_elem(&conns, &ts->owner);
	/* The owner may have moved on to its next request or closed: then drop the slice. */
	if (c && c->conn_id == ts->owner_conn_id && c->seq == ts->owner_seq)
		__sync_fetch_and_add(&c->cpu_ns, delta);
}

/* Called on a tracked syscall exit: settle the current slice, then make `c` the owner. */
static __always_inline void set_owner(__u32 tid, struct conn_key *key, struct conn_state *c,
				      __u64 now)
{
	struct thread_state *ts = bpf_map_lookup_elem(&threads, &tid);
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
}

/* Charge whatever the calling thread ran since its last charge to its current owner. */
static __always_inline void settle_current_thread(__u32 tid, __u64 now)
{
	struct thread_state *ts = bpf_map_lookup_elem(&threads, &tid);
	if (ts)
		charge_owner(ts, now);
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
		charge_owner(ts, now);
		ts->oncpu_since = 0;
	}
	ts = bpf_map_lookup_elem(&threads, &next_tid);
	if (ts)
		ts->oncpu_since = now;
	return 0;
}

/*
 * VmRSS as /proc/<pid>/status computes it since 6.2: file + anon + shmem pages, each read
 * from its percpu_counter's global count and clamped at zero.
 */
static __always_inline __u64 process_rss_bytes(struct task_struct *task)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	if (!mm)
		return 0;
	/* MM_FILEPAGES = 0, MM_ANONPAGES = 1, MM_SHMEMPAGES = 3 (stable kernel enum). */
	s64 file = 0, anon = 0, shmem = 0;
	bpf_core_read(&file, sizeof(file), &mm->rss_stat[0].count);
	bpf_core_read(&anon, sizeof(anon), &mm->rss_stat[1].count);
	bpf_core_read(&shmem, sizeof(shmem), &mm->rss_stat[3].count);
	__u64 pages = (file > 0 ? file : 0) + (anon > 0 ? anon : 0) + (shmem > 0 ? shmem : 0);
	return pages << 12; /* 4 KiB pages (x86-64, default arm64) */
}

#endif /* __PC_RESOURCE_TRACKER_BPF_H */
