/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What enters the connection table "conns": the processes and connections that pass the filters
 * of struct pc_filter_cfg, applied on every path into it (accept, listen, connect, and adoption
 * of connections that were open before the loader started); the id each new entry gets; and
 * what is counted when the table is full. */
#ifndef __PC_ADMISSION_BPF_H
#define __PC_ADMISSION_BPF_H

#include "maps.bpf.h"
#include "ringbuf.bpf.h"

/* Process-level filters: ignored pids, --pids, --process (comm or executable), cgroups. */
static __always_inline bool admit_process(struct task_struct *task, __u32 tgid, __u64 cgroup_id,
					  struct pc_filter_cfg *cfg)
{
	if (bpf_map_lookup_elem(&ignore_pids, &tgid))
		return false;
	if (!cfg)
		return true;
	if (cfg->pids_on && !bpf_map_lookup_elem(&filter_pids, &tgid))
		return false;
	if (cfg->cgroups_on && !bpf_map_lookup_elem(&filter_cgroups, &cgroup_id))
		return false;
	if (cfg->comms_on) {
		/* Match the leader's comm, its program part, or the executable's name: runtimes
		 * rename their main thread (Node 24 calls it "MainThread"), setproctitle writes
		 * "gunicorn: worker" there, but users filter by program name. */
		char name[16] = {};
		struct task_struct *leader = BPF_CORE_READ(task, group_leader);
		bpf_probe_read_kernel_str(name, sizeof(name), &leader->comm);
		if (bpf_map_lookup_elem(&filter_comms, name))
			return true;
		bool cut = false;
		for (int i = 0; i < sizeof(name); i++) {
			if (name[i] == ':' || name[i] == ' ')
				cut = true;
			if (cut)
				name[i] = 0;
		}
		if (cut && bpf_map_lookup_elem(&filter_comms, name))
			return true;
		const unsigned char *exe = BPF_CORE_READ(task, mm, exe_file, f_path.dentry, d_name.name);
		__builtin_memset(name, 0, sizeof(name));
		if (!exe || bpf_probe_read_kernel_str(name, sizeof(name), exe) < 0)
			return false;
		return bpf_map_lookup_elem(&filter_comms, name) != NULL;
	}
	return true;
}

static __always_inline bool admit(struct task_struct *task, __u32 tgid, __u16 local_port,
				  __u64 cgroup_id)
{
	__u32 zero = 0;
	struct pc_filter_cfg *cfg = bpf_map_lookup_elem(&filter_cfg, &zero);
	if (cfg && cfg->ports_on && !bpf_map_lookup_elem(&filter_ports, &local_port))
		return false;
	return admit_process(task, tgid, cgroup_id, cfg);
}

/* The conn_id of a new entry of "conns", server or client (pc_request.conn_id). */
static __always_inline __u64 next_conn_id(void)
{
	__u32 zero = 0;
	__u64 *ctr = bpf_map_lookup_elem(&conn_id_seq, &zero);
	if (!ctr)
		return 0;
	*ctr += 1;
	/* Below 2^53, so userspace holds it exactly as a double: 13 bits of CPU, 40 of counter. */
	return ((__u64)(bpf_get_smp_processor_id() & 0x1fff) << 40) | (*ctr & ((1ULL << 40) - 1));
}

/*
 * An inbound connection "conns" had no room for (the insert failed: the table is full). Its
 * requests are counted lost, the one under way now if `in_request` (a read), until one finds
 * room (maybe_adopt()).
 */
static __always_inline void table_full(struct pc_conn_key *key, bool in_request)
{
	__u8 v = IGN_TABLE_FULL;
	if (in_request) {
		v |= IGN_IN_REQUEST;
		count(PC_CNT_CONN_TABLE_FULL);
	}
	bpf_map_update_elem(&ignored_fds, key, &v, BPF_ANY);
}

#endif /* __PC_ADMISSION_BPF_H */
