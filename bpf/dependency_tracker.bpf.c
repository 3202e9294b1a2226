/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Outbound connections as they are opened: connect() of a serving process starts tracking one
 * (dependency.bpf.h) and takes its caller, and the handshake (tp_btf/inet_sock_set_state) times
 * it and registers its 4-tuple so that the accepting side on this host can find it.
 */

#include "dependency.bpf.h"
#include "serving.bpf.h"

SEC("tracepoint/syscalls/sys_enter_connect")
int sys_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pc_conn_key key = { .tgid = pid_tgid >> 32, .fd = (__u32)ctx->args[0] };
	if (!is_serving(key.tgid))
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct sock *sk = sock_of_fd(task, key.fd);
	if (!sk || !is_inet_tcp(sk))
		return 0;
	/* The process filters hold here too: the loader seeds every listening process as a
	 * server (loader/src/seed.rs), and one outside --pids/--process/the pods takes no room. */
	__u32 zero = 0;
	if (!admit_process(task, key.tgid, bpf_get_current_cgroup_id(),
			   bpf_map_lookup_elem(&filter_cfg, &zero))) {
		remove_serving_process(key.tgid);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	/* Addresses are read at exit, once connect() has bound a local port. */
	struct conn_state *c = track_client(&key, sk, true, now);
	if (!c)
		return 0;
	/* The request the thread serves as it opens the connection is what its first exchange
	 * serves, however late the write comes (event loops write once the connect completes). */
	__u32 tid = (__u32)pid_tgid;
	struct thread_state *ts = bpf_map_lookup_elem(&threads, &tid);
	if (ts) {
		/* Opening the connection is that request's code acting: the segment is its. */
		take_slice(ts, thread_runtime(task, now));
		struct pc_conn_key skey = {};
		struct conn_state *server = caller_of(ts, &skey, &c->caller_inferred, true);
		if (server) {
			set_parent(c, &key, &skey, server);
			c->parent_at_connect = 1;
			charge(ts, server, false, now, key.tgid);
			set_owner(ts, &skey, server);
		}
	}
	bpf_map_delete_elem(&ignored_fds, &key);
	struct connecting_state cs = { .key = key, .start_ns = now };
	__u64 skp = (__u64)sk;
	bpf_map_update_elem(&connecting, &skp, &cs, BPF_ANY);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_inet_sock_set_state, const struct sock *sk, int oldstate, int newstate)
{
	__u64 skp = (__u64)sk;
	struct connecting_state *cs = bpf_map_lookup_elem(&connecting, &skp);
	if (!cs)
		return 0;
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_SENT) {
		struct conn_state *c = bpf_map_lookup_elem(&conns, &cs->key);
		if (c && c->sk == skp) {
			c->connect_ns = bpf_ktime_get_ns() - cs->start_ns;
			/* The local port is bound by now: the accepting side can find us. */
			read_sock_addrs((struct sock *)sk, c);
			register_tuple(c);
		}
	}
	if (newstate != TCP_SYN_SENT)
		bpf_map_delete_elem(&connecting, &skp);
	return 0;
}
