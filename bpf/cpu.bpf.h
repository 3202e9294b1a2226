/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Per-request CPU, fed by the tracked syscalls (request_tracker.bpf.c, dependency_tracker.bpf.c)
 * and by tp_btf/sched_switch and the epoll waits (resource_tracker.bpf.c).
 *
 * A serving thread's on-CPU time is cut into segments at each tracked syscall, and each
 * segment is charged by how it ends, not only by what the thread touched last:
 *   - ending in a response write: to that response's request (an event loop that read
 *     requests A and B before running A's handler charges A's handler to A);
 *   - ending in an outbound call's write or read: to the request that call serves;
 *   - ending in a read, or in a sleep: to the thread's owner, the request it served last
 *     (its handler, or its epilogue after the response until the thread sleeps).
 * Segments a thread runs after it slept once its owner's response started (timers, background
 * work, waiting for the next request) belong to no request: they are counted in
 * PC_CNT_CPU_UNATTRIBUTED_NS, so that the requests' CPU plus that counter is the serving
 * threads' CPU. A segment charged by the owner rule while other requests the thread read were
 * still waiting for their handler may belong to any of them: the request is flagged
 * PC_F_CPU_APPORTIONED.
 *
 * Outbound calls (dependency.bpf.h) are attributed with the same state: two queues of
 * requests per thread, in the order an event loop runs their code. Measured with strace on
 * Node/undici and asyncio/aiohttp under 8 concurrent clients: both read a batch of ready
 * sockets before the code those reads unblock acts.
 *   - "fresh": requests the thread read whose handler has not acted yet;
 *   - "woken": requests whose upstream response the thread read, whose continuation after the
 *     await has not acted yet.
 * Each epoll wait the thread returns from is a turn of its loop; each entry remembers the turn
 * it was queued in, and responses teach how many turns later a handler (fresh) or continuation
 * (woken) acts: Node 0 and 0 (a handler runs in its read's callback, a continuation right
 * after its read), asyncio/aiohttp 2 and 1 (a task step waits for the next turn). A call goes
 * to the request whose turn comes first. A connect() is a point where a request acts too: it
 * cuts the segment and charges it to that request, except where nothing was woken and several
 * requests are fresh (a pool opening a connection for the last of a batch of handlers before
 * it writes the others' calls on idle connections): the connection's first write picks then.
 * The kernel cannot know the order for certain; such choices are flagged
 * PC_DF_CALLER_INFERRED.
 */
#ifndef __PC_CPU_BPF_H
#define __PC_CPU_BPF_H

#include "maps.bpf.h"
#include "ringbuf.bpf.h"
#include "cpu_clock.bpf.h"

/*
 * A thread's CPU clock: the scheduler's own account (se.sum_exec_runtime, what
 * CLOCK_THREAD_CPUTIME_ID reads), not our view of its switches. sched_switch does not report
 * every switch-in: measured on 6.18, about half of the switches from the idle task to a woken
 * thread never reach the tracepoint, so a clock started at switch-in silently lost whole
 * stretches (requests charged 0 CPU). The sum is exact at a switch-out (update_curr just ran);
 * at a syscall it lacks the time since the last update, which is now minus se.exec_start, with
 * exec_start on the task clock: task_clock_offset converts it to ktime.
 */
static __always_inline __u64 thread_runtime(struct task_struct *task, __u64 now)
{
	__u64 sum = BPF_CORE_READ(task, se.sum_exec_runtime);
	__u64 start = BPF_CORE_READ(task, se.exec_start);
	__u32 zero = 0;
	__s64 *offset = bpf_map_lookup_elem(&task_clock_offset, &zero);
	if (!offset || !*offset || !start)
		return sum;
	__u64 since = now - *offset;
	/* Beyond a second the offset is not trusted (no switch recalibrated it). */
	if (since > start && since - start < 1000000000ULL)
		sum += since - start;
	return sum;
}

/* Bring the thread's pending segment up to its CPU clock `runtime` (cpu_clock.bpf.h). */
static __always_inline void take_slice(struct thread_state *ts, __u64 runtime)
{
	pc_clock_advance(&ts->runtime_mark, &ts->pending_ns, runtime);
}

/* The thread slept, its clock brought up to the exact `runtime` (take_slice): `owner`, the
 * request charged during its stretch on the CPU, gives back the lead its syscall readings
 * counted (cpu_clock.bpf.h). */
static __always_inline void refund_clock_lead(struct thread_state *ts, struct conn_state *owner, __u64 runtime)
{
	__u64 back = pc_clock_refund(pc_clock_lead(ts->runtime_mark, runtime), owner->cpu_ns);
	if (!back)
		return;
	__sync_fetch_and_add(&owner->cpu_ns, -back);
	ts->runtime_mark -= back;
}

/* Is `c` still the request (conn_id, seq) and open for charging? */
static __always_inline bool is_live(struct conn_state *c, __u64 conn_id, __u32 seq)
{
	return c && c->conn_id == conn_id && c->seq == seq && c->phase != PHASE_FLUSHED;
}

/* The thread's owner, when it is still the request it was (not reported or closed). */
static __always_inline struct conn_state *live_owner(struct thread_state *ts)
{
	struct conn_state *c = bpf_map_lookup_elem(&conns, &ts->owner);
	return is_live(c, ts->owner_conn_id, ts->owner_seq) ? c : NULL;
}

/* On-CPU ns the kernel can place in no request: counted in total and for its process. */
static __always_inline void count_unattributed(__u32 tgid, __u64 ns)
{
	if (!ns)
		return;
	count_n(PC_CNT_CPU_UNATTRIBUTED_NS, ns);
	__u64 *per_process = bpf_map_lookup_elem(&cpu_unattributed, &tgid);
	if (per_process)
		__sync_fetch_and_add(per_process, ns);
	else
		bpf_map_update_elem(&cpu_unattributed, &tgid, &ns, BPF_NOEXIST);
}

/* `ns` of the thread's CPU belong to no request: counted less what the thread owes
 * (cpu_clock.bpf.h). */
static __always_inline void thread_unattributed(struct thread_state *ts, __u32 tgid, __u64 ns)
{
	count_unattributed(tgid, pc_clock_pay(&ts->clock_debt, ns));
}

/* The pending segment belongs to no request. */
static __always_inline void charge_nobody(struct thread_state *ts, __u32 tgid)
{
	thread_unattributed(ts, tgid, ts->pending_ns);
	ts->pending_ns = 0;
}

/*
 * Charge the pending segment to `c` (of process `tgid`), at most the wall time since c's
 * first read: one thread cannot run longer than that for it. The rest of the segment ran
 * before c existed, code of something else that made no tracked syscall on this thread (Go:
 * a goroutine another request spawned, run by the OS thread that then wrote c's response),
 * and is nobody's.
 */
static __always_inline void charge(struct thread_state *ts, struct conn_state *c, bool apportioned,
				   __u64 now, __u32 tgid)
{
	if (!ts->pending_ns)
		return;
	__u64 start = c->start_ns;
	if (start && now > start && ts->pending_ns > now - start) {
		thread_unattributed(ts, tgid, ts->pending_ns - (now - start));
		ts->pending_ns = now - start;
	}
	__sync_fetch_and_add(&c->cpu_ns, ts->pending_ns);
	if (apportioned)
		c->flags |= PC_F_CPU_APPORTIONED;
	ts->pending_ns = 0;
}

#define FIFO_SLOT(f, i) ((f)->at[((f)->head + (i)) & (REQUEST_FIFO_MAX - 1)])

/* Where (conn_id, seq) is in the fifo, as an offset from its head; -1 when absent. */
static __always_inline int fifo_find(struct request_fifo *f, __u64 conn_id, __u32 seq)
{
	for (int i = 0; i < REQUEST_FIFO_MAX; i++) {
		if (i >= f->used)
			break;
		if (FIFO_SLOT(f, i).conn_id == conn_id && FIFO_SLOT(f, i).seq == seq)
			return i;
	}
	return -1;
}

/* Are requests other than the owner waiting for their handler on this thread? */
static __always_inline bool others_waiting(struct thread_state *ts)
{
	return ts->fresh.live > 1 ||
	       (ts->fresh.live == 1 && fifo_find(&ts->fresh, ts->owner_conn_id, ts->owner_seq) < 0);
}

/* Charge the pending segment by the owner rule; false when there is no live owner. */
static __always_inline bool charge_owner(struct thread_state *ts, struct conn_state *owner, __u64 now,
					 __u32 tgid)
{
	if (ts->owner_closed || !owner)
		return false;
	charge(ts, owner, others_waiting(ts), now, tgid);
	return true;
}

/* Free the slots at the head that hold dead entries. */
static __always_inline void fifo_trim(struct request_fifo *f)
{
	for (int i = 0; i < REQUEST_FIFO_MAX; i++) {
		if (!f->used || FIFO_SLOT(f, 0).conn_id)
			break;
		f->head = (f->head + 1) & (REQUEST_FIFO_MAX - 1);
		f->used -= 1;
	}
}

/* Queue request `c` (on `key`) once. The oldest entry goes when the fifo is full: its code is
 * long overdue. */
static __always_inline void fifo_push(struct request_fifo *f, struct pc_conn_key *key, struct conn_state *c,
				      __u32 loop_turn)
{
	if (fifo_find(f, c->conn_id, c->seq) >= 0)
		return;
	if (f->used >= REQUEST_FIFO_MAX) {
		if (FIFO_SLOT(f, 0).conn_id && f->live)
			f->live -= 1;
		f->head = (f->head + 1) & (REQUEST_FIFO_MAX - 1);
		f->used = REQUEST_FIFO_MAX - 1;
	}
	struct waiting_request *w = &FIFO_SLOT(f, f->used);
	w->key = *key;
	w->conn_id = c->conn_id;
	w->seq = c->seq;
	w->loop_turn = loop_turn;
	f->used += 1;
	f->live += 1;
}

/* Forget (conn_id, seq): its code acted (it answered or called out). */
static __always_inline void fifo_drop_at(struct request_fifo *f, int at)
{
	if (at < 0)
		return;
	FIFO_SLOT(f, at & (REQUEST_FIFO_MAX - 1)).conn_id = 0;
	if (f->live)
		f->live -= 1;
	fifo_trim(f);
}

static __always_inline void fifo_drop(struct request_fifo *f, __u64 conn_id, __u32 seq)
{
	fifo_drop_at(f, fifo_find(f, conn_id, seq));
}

/* The request acted: neither its handler nor its continuation is waiting any more. */
static __always_inline void acted(struct thread_state *ts, __u64 conn_id, __u32 seq)
{
	fifo_drop(&ts->fresh, conn_id, seq);
	fifo_drop(&ts->woken, conn_id, seq);
}

/* The oldest request in the fifo that is still being read, i.e. has not answered (entries of
 * requests that answered or ended are dropped on the way); removed. */
static __always_inline struct conn_state *fifo_pop(struct request_fifo *f, struct pc_conn_key *key)
{
	for (int i = 0; i < REQUEST_FIFO_MAX; i++) {
		if (!f->used)
			break;
		struct waiting_request *w = &FIFO_SLOT(f, 0);
		__u64 conn_id = w->conn_id;
		__u32 seq = w->seq;
		*key = w->key;
		f->head = (f->head + 1) & (REQUEST_FIFO_MAX - 1);
		f->used -= 1;
		if (!conn_id)
			continue;
		if (f->live)
			f->live -= 1;
		struct conn_state *c = bpf_map_lookup_elem(&conns, key);
		if (is_live(c, conn_id, seq) && c->phase == PHASE_READING)
			return c;
	}
	return NULL;
}

/* Responses observed before the learned turns are renewed from the window's fewest; until
 * the first window is full, they follow its running fewest. */
#define TURN_WINDOW 16
#define TURN_MAX 3

static __always_inline void observe_turns(struct thread_state *ts, __u8 *turns, __u8 *seen, __u8 *least,
					  __u8 learned_bit, __u32 observed)
{
	__u8 o = observed > TURN_MAX ? TURN_MAX : observed;
	if (!*seen || o < *least)
		*least = o;
	if (!(ts->learned & learned_bit))
		*turns = *least;
	if (++*seen >= TURN_WINDOW) {
		*turns = *least;
		*seen = 0;
		ts->learned |= learned_bit;
	}
}

/*
 * A response is where a request's code acts for sure: how many event-loop turns after its
 * read (fresh) or after its last upstream response (woken) tells how this runtime schedules
 * code. The fewest over a window is kept: a handler that awaited something else only adds.
 * The request then leaves both queues (one search of each serves both purposes).
 */
static __always_inline void response_acted(struct thread_state *ts, __u64 conn_id, __u32 seq)
{
	int woken = fifo_find(&ts->woken, conn_id, seq);
	int fresh = fifo_find(&ts->fresh, conn_id, seq);
	if (woken >= 0)
		observe_turns(ts, &ts->turns_woken, &ts->seen_woken, &ts->least_woken, 2,
			      ts->loop_turn - FIFO_SLOT(&ts->woken, woken & (REQUEST_FIFO_MAX - 1)).loop_turn);
	else if (fresh >= 0)
		observe_turns(ts, &ts->turns_fresh, &ts->seen_fresh, &ts->least_fresh, 1,
			      ts->loop_turn - FIFO_SLOT(&ts->fresh, fresh & (REQUEST_FIFO_MAX - 1)).loop_turn);
	fifo_drop_at(&ts->woken, woken);
	fifo_drop_at(&ts->fresh, fresh);
}

/*
 * Where code waits its turn: the queued request whose code runs first (its queueing turn
 * plus the learned delay; fresh first on a tie, as a loop runs handlers it started before
 * the continuations of reads in the later turn), removed from both queues. NULL when none is
 * queued, when it is no longer waiting, or at a connect when several fresh requests tie and
 * nothing was woken.
 */
static __always_inline struct conn_state *take_next_turn(struct thread_state *ts, struct pc_conn_key *key,
							 bool at_connect)
{
	bool found = false, in_woken = false;
	__u32 best = 0, best_at = 0;
	for (int i = 0; i < REQUEST_FIFO_MAX; i++) {
		if (i >= ts->fresh.used)
			break;
		struct waiting_request *w = &FIFO_SLOT(&ts->fresh, i);
		__u32 turn = w->loop_turn + ts->turns_fresh;
		if (w->conn_id && (!found || (__s32)(turn - best) < 0)) {
			found = true;
			best = turn;
			best_at = i;
		}
	}
	for (int i = 0; i < REQUEST_FIFO_MAX; i++) {
		if (i >= ts->woken.used)
			break;
		struct waiting_request *w = &FIFO_SLOT(&ts->woken, i);
		__u32 turn = w->loop_turn + ts->turns_woken;
		if (w->conn_id && (!found || (__s32)(turn - best) < 0)) {
			found = in_woken = true;
			best = turn;
			best_at = i;
		}
	}
	if (!found || (at_connect && !in_woken && !ts->woken.live && ts->fresh.live > 1))
		return NULL;
	struct request_fifo *f = in_woken ? &ts->woken : &ts->fresh;
	struct waiting_request *w = &FIFO_SLOT(f, best_at & (REQUEST_FIFO_MAX - 1));
	*key = w->key;
	__u64 conn_id = w->conn_id;
	__u32 seq = w->seq;
	struct conn_state *c = bpf_map_lookup_elem(&conns, key);
	if (!is_live(c, conn_id, seq) || c->phase != PHASE_READING)
		return NULL;
	acted(ts, conn_id, seq);
	return c;
}

/* A request's response started (or it ended without one): it no longer counts as in flight
 * on the thread that read it. */
static __always_inline void response_started(struct conn_state *c, struct thread_state *ts, __u32 tid)
{
	struct thread_state *reader = c->tid == tid ? ts : bpf_map_lookup_elem(&threads, &c->tid);
	if (reader && reader->in_flight)
		reader->in_flight -= 1;
}

/* A new thread's state (never written). */
static struct thread_state thread_state_zero;

/* The calling thread's state with its pending segment brought up to now (created, with an
 * empty segment, the first time the thread touches a tracked socket). */
static __always_inline struct thread_state *current_thread(__u32 tid, __u64 now)
{
	__u64 runtime = thread_runtime((struct task_struct *)bpf_get_current_task(), now);
	struct thread_state *ts = bpf_map_lookup_elem(&threads, &tid);
	if (ts) {
		take_slice(ts, runtime);
		return ts;
	}
	/* Too big for the stack: inserted from zeros, then the clock is set. */
	bpf_map_update_elem(&threads, &tid, &thread_state_zero, BPF_ANY);
	ts = bpf_map_lookup_elem(&threads, &tid);
	if (ts)
		ts->runtime_mark = runtime;
	return ts;
}

/* Make request `c` (on `key`) the owner of the thread. */
static __always_inline void set_owner(struct thread_state *ts, struct pc_conn_key *key, struct conn_state *c)
{
	ts->owner = *key;
	ts->owner_conn_id = c->conn_id;
	ts->owner_seq = c->seq;
	ts->owner_closed = 0;
}

#endif /* __PC_CPU_BPF_H */
