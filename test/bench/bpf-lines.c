/*
 * Prints the source line of each JIT-compiled instruction range of one loaded eBPF program,
 * from the kernel's own line info (the object is built with -g): "F <address>" per function
 * (the program and its subprograms), then "L <address> <file>:<line>\t<source text>" per
 * range, addresses as in /proc/kallsyms and perf samples. Used by test/bench/bpf-profile.ts,
 * which compiles it on demand (cc ... -lbpf). Usage: bpf-lines <program id>
 */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: bpf-lines <program id>\n");
		return 2;
	}
	int fd = bpf_prog_get_fd_by_id(atoi(argv[1]));
	if (fd < 0) {
		perror("bpf_prog_get_fd_by_id");
		return 1;
	}
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		perror("bpf_obj_get_info_by_fd");
		return 1;
	}
	/* Second call with room for the arrays the first one sized. */
	__u32 n_lines = info.nr_line_info, n_jited = info.nr_jited_line_info, n_funcs = info.nr_jited_ksyms;
	__u32 line_size = info.line_info_rec_size, jited_size = info.jited_line_info_rec_size;
	__u32 btf_id = info.btf_id;
	if (!n_jited || !btf_id) {
		fprintf(stderr, "program %s has no JIT line info (not built with -g, or JIT off)\n", argv[1]);
		return 1;
	}
	void *lines = calloc(n_lines, line_size);
	__u64 *jited = calloc(n_jited, jited_size);
	__u64 *funcs = calloc(n_funcs, sizeof(__u64));
	memset(&info, 0, sizeof(info));
	info.nr_line_info = n_lines;
	info.line_info_rec_size = line_size;
	info.line_info = (unsigned long)lines;
	info.nr_jited_line_info = n_jited;
	info.jited_line_info_rec_size = jited_size;
	info.jited_line_info = (unsigned long)jited;
	info.nr_jited_ksyms = n_funcs;
	info.jited_ksyms = (unsigned long)funcs;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		perror("bpf_obj_get_info_by_fd");
		return 1;
	}
	struct btf *btf = btf__load_from_kernel_by_id(btf_id);
	if (!btf) {
		perror("btf__load_from_kernel_by_id");
		return 1;
	}
	for (__u32 f = 0; f < n_funcs; f++)
		printf("F %llx\n", (unsigned long long)funcs[f]);
	/* jited_line_info[i] is the address of line_info[i]'s first instruction. */
	for (__u32 i = 0; i < n_jited && i < n_lines; i++) {
		struct bpf_line_info *l = (struct bpf_line_info *)((char *)lines + (size_t)i * line_size);
		const char *file = btf__name_by_offset(btf, l->file_name_off);
		const char *text = btf__name_by_offset(btf, l->line_off);
		printf("L %llx %s:%u\t%s\n", (unsigned long long)jited[i], file ? file : "?",
		       BPF_LINE_INFO_LINE_NUM(l->line_col), text ? text : "");
	}
	return 0;
}
