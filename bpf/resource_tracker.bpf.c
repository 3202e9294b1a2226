/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The hooks that feed per-request CPU (cpu.bpf.h) besides the tracked syscalls: each epoll wait
 * a serving thread returns from is a turn of its event loop, and each sleep (tp_btf/sched_switch)
 * ends its CPU segment.
 */

#include "cpu.bpf.h"
#include "core_fixes.bpf.h"
#include "serving.bpf.h"

/* The loop's turn: every epoll wait a serving thread returns from. Only threads already in
 * the map count (one small lookup turns away other processes). */
static __always_inline int on_loop_wait(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!is_serving(tgid))
		return 0;
	__u32 tid = (__u32)pid_tgid;
	struct thread_state *ts = bpf_map_lookup_elem(&threads, &tid);
	if (ts)
		ts->loop_turn += 1;
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_wait")
int sys_exit_epoll_wait(void *ctx) { return on_loop_wait(); }
SEC("tracepoint/syscalls/sys_exit_epoll_pwait")
int sys_exit_epoll_pwait(void *ctx) { return on_loop_wait(); }

/* Did `prev` go to sleep, rather than being preempted? A preemption on the way back to user
 * space (every preemption of user code without CONFIG_PREEMPT) reports preempt=false with the
 * task still runnable: the state tells. */
static __always_inline bool went_to_sleep(bool preempt, struct task_struct *prev)
{
	if (preempt)
		return false;
	long state;
	if (bpf_core_field_exists(prev->__state))
		state = BPF_CORE_READ(prev, __state);
	else
		state = BPF_CORE_READ((struct task_struct___pre514 *)prev, state);
	return state != 0; /* TASK_RUNNING */
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	/* update_curr() just ran for prev: exec_start is now, on the task clock. */
	__u64 exec_start = prev->se.exec_start;
	if (exec_start) {
		__u32 zero = 0;
		__s64 *offset = bpf_map_lookup_elem(&task_clock_offset, &zero);
		if (offset)
			*offset = (__s64)(now - exec_start);
	}
	/* Only threads that ever served a tracked request are in the map, and only serving
	 * processes have such threads: the per-CPU memo answers for most switches. */
	if (!is_serving(prev->tgid))
		return 0;
	__u32 prev_tid = prev->pid;
	struct thread_state *ts = bpf_map_lookup_elem(&threads, &prev_tid);
	if (!ts)
		return 0;
	__u64 runtime = prev->se.sum_exec_runtime;
	take_slice(ts, runtime);
	/*
	 * A sleep ends the segment (a preemption does not): it was the owner's, its handler
	 * awaiting or its epilogue; once the response has started, the owner is done. Not on
	 * HTTP/2: a handler's code there is no owner's, and a sleep in the middle of it (V8's
	 * main thread waiting on a futex for its GC or compiler threads) would send it to no
	 * stream; the segment ends at the next HTTP/2 syscall, which userspace charges to the
	 * streams it carried or that were under way.
	 */
	if (ts->owner_closed != OWNER_H2 && went_to_sleep(preempt, prev)) {
		struct conn_state *owner = live_owner(ts);
		if (charge_owner(ts, owner, now, prev->tgid))
			refund_clock_lead(ts, owner, runtime);
		else
			charge_nobody(ts, prev->tgid);
		if (!owner || owner->phase != PHASE_READING)
			ts->owner_closed = 1;
	}
	/* A lead the owner could not give back (charged to nobody, or to a request gone by
	 * now) becomes the thread's debt: the next segments are exact. */
	pc_clock_settle(&ts->runtime_mark, &ts->clock_debt, runtime);
	return 0;
}
