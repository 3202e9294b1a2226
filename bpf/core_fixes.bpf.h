/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Older kernels' layouts of kernel structs, as CO-RE flavours (a ___suffix is dropped when
 * matching the running kernel's BTF): bpf_core_field_exists / bpf_core_type_exists pick the
 * layout at load time, and the verifier never walks the branch for the other one.
 */
#ifndef __PC_CORE_FIXES_BPF_H
#define __PC_CORE_FIXES_BPF_H

/* Kernels before 5.14 name the task state `state`. */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

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

#endif /* __PC_CORE_FIXES_BPF_H */
