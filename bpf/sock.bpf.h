/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* From an fd to its TCP socket, and the socket's addresses. */
#ifndef __PC_SOCK_BPF_H
#define __PC_SOCK_BPF_H

#include "types.bpf.h"

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define EINPROGRESS 115

static __always_inline struct sock *sock_of_fd(struct task_struct *task, __u32 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	if (!file)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	/* private_data is a socket only if the socket points back at this file. */
	if (!sock || BPF_CORE_READ(sock, file) != file)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/* An IPv4 or IPv6 TCP socket? */
static __always_inline bool is_inet_tcp(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return (family == AF_INET || family == AF_INET6) &&
	       BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP;
}

/* Fills family, ports and addresses of `c` from the socket. */
static __always_inline void read_sock_addrs(struct sock *sk, struct conn_state *c)
{
	c->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	c->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	/* Sized reads: BPF_CORE_READ_INTO on an array destination would copy one byte. */
	if (c->family == AF_INET) {
		bpf_core_read(c->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(c->remote_addr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(c->local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(c->remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* 16-byte form of an address as stored in conn_state: IPv4 becomes ::ffff:a.b.c.d. */
static __always_inline void addr16(__u8 *dst, const __u8 *src, __u16 family)
{
	if (family == AF_INET) {
		__builtin_memset(dst, 0, 10);
		dst[10] = 0xff;
		dst[11] = 0xff;
		__builtin_memcpy(dst + 12, src, 4);
	} else {
		__builtin_memcpy(dst, src, 16);
	}
}

/*
 * The connection's 4-tuple as its connecting side sees it. `outbound` says whether `c` is
 * that side (a client conn) or the accepting side (a server conn, whose remote is the client).
 */
static __always_inline void tuple_of(struct conn_state *c, bool outbound, struct tuple_key *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	if (outbound) {
		addr16(t->saddr, c->local_addr, c->family);
		addr16(t->daddr, c->remote_addr, c->family);
		t->sport = c->local_port;
		t->dport = c->remote_port;
	} else {
		addr16(t->saddr, c->remote_addr, c->family);
		addr16(t->daddr, c->local_addr, c->family);
		t->sport = c->remote_port;
		t->dport = c->local_port;
	}
}

#endif /* __PC_SOCK_BPF_H */
