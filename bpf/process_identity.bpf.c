/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A process's OpenTelemetry identity, read from its environment at exec (sched_process_exec).
 * Userspace reads /proc/<pid>/environ too, but a process may rewrite that memory: gunicorn's
 * recommended setproctitle moves the environment and writes its title over it, so the service
 * name set by the user would be lost. At exec nothing has run yet.
 *
 * The environment's NUL-separated entries are walked one string read at a time (the first
 * PC_ENV_SCAN_ENTRIES), and their first bytes compared as words with the two names; each hit
 * becomes one pc_process_env record. An entry longer than PC_DATA_MAX ends the walk (where the
 * next one starts is then unknown). Costs a few µs per exec.
 */

#include "maps.bpf.h"

/* The names as little-endian words: "OTEL_SER" "VICE_NAM" "E=" and "OTEL_RES" "OURCE_AT"
 * "TRIBUTES" "=". Word compares keep the walk within the verifier's jump budget. */
#define W_OTEL_SER 0x5245535f4c45544fULL
#define W_VICE_NAM 0x4d414e5f45434956ULL
#define W_E_EQ     0x3d45
#define W_OTEL_RES 0x5345525f4c45544fULL
#define W_OURCE_AT 0x54415f454352554fULL
#define W_TRIBUTES 0x5345545542495254ULL
#define SERVICE_NAME_LEN 18  /* strlen("OTEL_SERVICE_NAME=") */
#define RESOURCE_ATTRS_LEN 25 /* strlen("OTEL_RESOURCE_ATTRIBUTES=") */

static __always_inline void emit_env(__u32 tgid, __u32 key, __u64 value_addr)
{
	struct pc_process_env *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return;
	r->type = PC_REC_PROCESS_ENV;
	r->pid = tgid;
	r->key = key;
	long n = bpf_probe_read_user_str(r->value, sizeof(r->value), (void *)value_addr);
	if (n <= 0) {
		bpf_ringbuf_discard(r, 0);
		return;
	}
	r->len = n - 1; /* a value cut at PC_ENV_VALUE_MAX reads as PC_ENV_VALUE_MAX - 1 bytes */
	bpf_ringbuf_submit(r, 0);
}

SEC("tracepoint/sched/sched_process_exec")
int on_process_exec(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 p = BPF_CORE_READ(task, mm, env_start);
	__u64 end = BPF_CORE_READ(task, mm, env_end);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	struct env_scratch *s = bpf_map_lookup_elem(&env_scratch, &zero);
	if (!s || !p)
		return 0;
	__u32 found = 0;
	for (__u32 e = 0; e < PC_ENV_SCAN_ENTRIES; e++) {
		if (p >= end)
			break;
		long n = bpf_probe_read_user_str(s->b, PC_DATA_MAX, (void *)p);
		if (n <= 0)
			break;
		__u64 *w = (__u64 *)s->b;
		if (n > SERVICE_NAME_LEN && w[0] == W_OTEL_SER && w[1] == W_VICE_NAM &&
		    *(__u16 *)(s->b + 16) == W_E_EQ) {
			emit_env(tgid, PC_ENV_SERVICE_NAME, p + SERVICE_NAME_LEN);
			found |= 1;
		} else if (n > RESOURCE_ATTRS_LEN && w[0] == W_OTEL_RES && w[1] == W_OURCE_AT &&
			   w[2] == W_TRIBUTES && s->b[24] == '=') {
			emit_env(tgid, PC_ENV_RESOURCE_ATTRIBUTES, p + RESOURCE_ATTRS_LEN);
			found |= 2;
		}
		if (found == 3 || n >= PC_DATA_MAX)
			break;
		p += n;
	}
	return 0;
}
