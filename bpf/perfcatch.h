/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * perfcatch.h - every record that crosses from the kernel (or the loader) into userspace,
 * and the constants the kernel, the loader and the agent must agree on.
 *
 * Rules, so that Rust and TypeScript can mirror it byte for byte:
 *   - fixed-width types only, explicit padding, no kernel types;
 *   - every record starts with a __u32 `type` (enum pc_record_type);
 *   - little-endian host order, natural alignment, sizes multiple of 8.
 *
 * The loader writes records to stdout as frames: a little-endian __u32 byte length, then the
 * record. Kernel records pass through unchanged except that pc_request.start_ns/end_ns are
 * rewritten from CLOCK_MONOTONIC to epoch nanoseconds. pc_data frames carry only
 * PC_DATA_HDR_SIZE + len bytes.
 *
 * loader/src/record.rs and src/decode/layout.ts mirror this file (the exit codes:
 * loader/src/exit.rs and src/loader/loader-process.ts; the capture defaults: src/config.ts);
 * their layout tests compare against the BTF of the compiled object and fail when this file
 * changes without them.
 */
#ifndef __PERFCATCH_H
#define __PERFCATCH_H

/*
 * The constants below are enums, not #defines, so that they are in the object's BTF, where
 * the layout tests read them (perfcatch.bpf.c references each enum).
 */

/* The version of this file's records and of the loader-info JSON ("abi"): the agent refuses
 * a loader that sends another. */
enum pc_abi {
	PC_ABI_VERSION = 3
};

enum pc_flush {
	/* prctl() option the loader calls to trigger the idle flush (no kernel defines it). */
	PC_FLUSH_PRCTL = 0x50434631, /* "PCF1" */
	/* Its third argument on kernels without bpf_for_each_map_elem (< 5.13): flush only the
	 * connections the loader listed in map "flush_list" (struct pc_flush_list). */
	PC_FLUSH_LISTED = 1,
	PC_FLUSH_LIST_MAX = 64
};

enum pc_data_size {
	/* Largest payload chunk in one pc_data record. Load-time capture sizes are clamped to it. */
	PC_DATA_MAX = 4096,
	/* Bytes of pc_data before its payload. */
	PC_DATA_HDR_SIZE = 24
};

/* Payload bytes captured per request when nobody says otherwise: the agent's
 * --capture-*-bytes defaults (src/config.ts). The agent always passes its values to the
 * loader, which sets them at load time. */
enum pc_capture_default {
	PC_CAPTURE_REQ_DEFAULT = 4096,
	PC_CAPTURE_RESP_DEFAULT = 512
};

/* The loader's exit status; its one stderr line says why. The agent does not restart a
 * loader that exited with one a restart cannot change (src/loader/loader-process.ts). */
enum pc_loader_exit {
	PC_EXIT_OTHER = 1,      /* anything else, e.g. stdout could not be written */
	PC_EXIT_USAGE = 2,      /* bad command line */
	PC_EXIT_PRIVILEGE = 3,  /* neither CAP_SYS_ADMIN nor CAP_BPF + CAP_PERFMON */
	PC_EXIT_NO_BTF = 4,     /* no usable /sys/kernel/btf/vmlinux */
	PC_EXIT_OLD_KERNEL = 5, /* no BPF ring buffer (Linux < 5.8) */
	PC_EXIT_OBJECT = 6,     /* the BPF object is missing or not a BPF ELF file */
	PC_EXIT_LOAD = 7        /* the kernel refused to load or attach a program */
};

enum pc_record_type {
	PC_REC_REQUEST = 1,     /* kernel: one finished server-side request */
	PC_REC_DATA = 2,        /* kernel: captured request/response bytes, before its request */
	PC_REC_DEPENDENCY = 3,  /* kernel: one outbound exchange made while serving a request */
	PC_REC_PROCESS_ENV = 4, /* kernel: an OpenTelemetry variable a process exec'd with */
	PC_REC_H2_IO = 5,       /* kernel: one read/write (part) on an HTTP/2 connection */
	PC_REC_H2_CONN = 6,     /* kernel: an HTTP/2 connection was detected (struct pc_request) */
	PC_REC_STATS = 16,      /* loader: counter snapshot, about once a second */
	PC_REC_PROCESS_CPU = 18, /* loader: one process's CPU charged to no request, with stats */
	PC_REC_LOADER_INFO = 17, /* loader: JSON (programs attached, kernel, tunables), once */
	PC_REC_RING_MARK = 19   /* loader: ring position of the ring-buffer records that follow */
};

/* pc_request.flags */
enum pc_request_flags {
	PC_F_CONN_CLOSED = 1 << 0,    /* emitted because the server closed the connection */
	PC_F_REQ_TRUNCATED = 1 << 1,  /* request bytes exceeded the capture size */
	PC_F_RESP_TRUNCATED = 1 << 2, /* response bytes exceeded the capture size */
	PC_F_DATA_LOST = 1 << 3,      /* a pc_data record for this request was dropped or shed */
	PC_F_SENDFILE = 1 << 4,       /* part of the response went out with sendfile */
	PC_F_PIPELINED = 1 << 6,      /* started at a response boundary inside one read batch:
				       * its request bytes were counted in an earlier record */
	PC_F_IDLE_FLUSH = 1 << 7,     /* emitted because its connection went idle after the
				       * response, not because the next request started */
	PC_F_LATE_WRITE = 1 << 8,     /* re-emitted: more response bytes followed an idle flush;
				       * replaces the earlier record with the same conn_id/seq */
	PC_F_CPU_APPORTIONED = 1 << 9, /* part of cpu_ns came from a segment charged by rule (the
				       * thread's owner) while other requests it had read were
				       * waiting: which of them used it, the kernel cannot know */
	PC_F_H2_MIDWAY = 1 << 10,     /* PC_REC_H2_CONN: joined an established connection (no
				       * preface seen): its HPACK tables are unknown */
	PC_F_H2_CLIENT = 1 << 11,     /* PC_REC_H2_CONN: an outbound connection (the process is
				       * the client: it wrote the preface) */
	PC_F_H2_UPGRADE = 1 << 12     /* PC_REC_H2_CONN: a server connection switched after an
				       * HTTP/1.1 `Upgrade: h2c` answered 101; its seq, start_ns,
				       * tid, bytes and *_captured are that request's (its pc_data
				       * precede it), which becomes stream 1 and is never sent as
				       * a pc_request */
};

/* pc_dependency.flags */
enum pc_dependency_flags {
	PC_DF_NEW_CONNECTION = 1 << 0, /* first exchange on a connection this process opened */
	PC_DF_CONN_CLOSED = 1 << 1,    /* emitted because the client closed the connection */
	PC_DF_ADOPTED = 1 << 2,        /* connection existed before tracking began */
	PC_DF_DATA_LOST = 1 << 3,      /* a pc_data record for this exchange was dropped */
	PC_DF_AT_PARENT_END = 1 << 4,  /* emitted when its parent request ended */
	PC_DF_CALLER_INFERRED = 1 << 5 /* the thread had made several requests' code runnable:
					* the caller was chosen by their order, not known */
};
/* io.bpf.h marks a lost pc_data on a request and on an exchange with the same bit. */
_Static_assert(PC_F_DATA_LOST == PC_DF_DATA_LOST, "PC_F_DATA_LOST and PC_DF_DATA_LOST must be one bit");

/* pc_data.direction */
enum pc_direction {
	PC_DIR_REQUEST = 1,  /* bytes the server read */
	PC_DIR_RESPONSE = 2  /* bytes the server wrote */
};

/* Kernel counters: per-CPU array map "counters", indexed by these values. */
enum pc_counter {
	PC_CNT_REQUESTS = 0,        /* request records submitted */
	PC_CNT_RB_DROP_REQUEST = 1, /* ring buffer full: request record lost */
	PC_CNT_RB_DROP_DATA = 2,    /* ring buffer full: data record lost */
	PC_CNT_CONN_ACCEPTED = 3,   /* accepted TCP connections that passed the filters */
	PC_CNT_CONN_TABLE_FULL = 4, /* requests lost: their connection found the connection table
				     * full (counted as each begins) */
	PC_CNT_CAPTURE_SHED = 5,    /* payload not captured: ring buffer over half full (overload) */
	PC_CNT_CONN_FILTERED = 6,   /* accepted connections rejected by the filters */
	PC_CNT_CONN_REPLACED = 7,   /* fd reused while a request was open (flushed early) */
	PC_CNT_DEPENDENCIES = 8,    /* dependency records submitted */
	PC_CNT_RB_DROP_DEPENDENCY = 9, /* ring buffer full: dependency record lost */
	PC_CNT_DEP_UNATTRIBUTED = 10,  /* outbound exchange with no request in progress: not sent */
	PC_CNT_CLIENT_CONNS = 11,   /* outbound connections tracked (connected or adopted) */
	PC_CNT_IDLE_FLUSHES = 12,   /* requests emitted by the idle flush */
	PC_CNT_CPU_UNATTRIBUTED_NS = 13, /* serving threads' on-CPU ns charged to no request */
	/* HTTP/2 (bpf/h2.bpf.h) */
	PC_CNT_H2_CONNS = 14,       /* connections detected as HTTP/2 (server and outbound) */
	PC_CNT_RB_DROP_H2 = 15,     /* ring buffer full: pc_h2_io record lost (the walk goes on;
				     * the direction's next record says PC_H2F_GAP) */
	PC_CNT_H2_UNCAPTURED = 16,  /* payload bytes of header-bearing frames beyond
				     * PC_H2_PAYLOAD_MAX, not captured */
	PC_CNT_H2_WALK_LOST = 17,   /* directions whose frame walk stopped (step or iovec bound,
				     * unreadable buffer): only counted afterwards */
	PC_CNT_MAX = 18
};

/* One HTTP (or other request/response) exchange on an accepted TCP connection. */
struct pc_request {
	__u32 type;        /* PC_REC_REQUEST */
	__u32 flags;       /* enum pc_request_flags */
	__u32 pid;         /* thread-group id of the server process */
	__u32 tid;         /* thread that read the request's first bytes */
	__u64 conn_id;     /* unique per connection: cpu << 40 | counter, below 2^53 */
	__u64 cgroup_id;   /* cgroup v2 id of the reading thread */
	__u64 start_ns;    /* first read of the request (epoch ns once through the loader) */
	__u64 end_ns;      /* last write of the response (epoch ns once through the loader) */
	__u64 cpu_ns;      /* on-CPU ns of its thread(s), first read..last write (bpf/cpu.bpf.h) */
	__u64 bytes_received; /* sum of read-side syscall return values */
	__u64 bytes_sent;     /* sum of write-side syscall return values, sendfile included */
	__u64 rss_bytes;      /* process RSS at the last write of the response */
	__u32 seq;            /* request number on this connection, from 1 */
	__u16 family;         /* AF_INET (2) or AF_INET6 (10) */
	__u16 local_port;     /* host order */
	__u16 remote_port;    /* host order */
	__u16 req_captured;   /* request bytes sent in pc_data records */
	__u16 resp_captured;  /* response bytes sent in pc_data records */
	__u16 status;         /* the response's status code, read by the kernel from its first
			       * write's status line when that is a final one (>= 200); else 0,
			       * and the response's head comes in pc_data records instead */
	__u8 local_addr[16];  /* AF_INET: first 4 bytes; AF_INET6: all 16 */
	__u8 remote_addr[16];
	char comm[16];        /* thread-group leader's comm, NUL padded */
	__u64 peer_conn_id;   /* when the caller is a tracked process on this host: its client
			       * connection's conn_id (request seq N <-> exchange seq N); else 0 */
	__u64 cpu_after_response_ns; /* on-CPU ns its thread ran after the response's last
				      * write, until it slept or served another request (the
				      * framework finishing the exchange, a GC): not in cpu_ns */
};

/*
 * One outbound exchange (request out, response in) on a TCP connection that a monitored
 * process opened, made while it was serving parent_conn_id/parent_seq. An exchange starts at
 * a write after a read (or the first write) and ends at its last read. pc_data records with
 * this conn_id carry its first bytes: PC_DIR_REQUEST what the process wrote, PC_DIR_RESPONSE
 * what it read.
 */
struct pc_dependency {
	__u32 type;             /* PC_REC_DEPENDENCY */
	__u32 flags;            /* enum pc_dependency_flags */
	__u32 pid;
	__u32 tid;              /* thread that started the exchange */
	__u64 conn_id;          /* the outbound connection */
	__u64 parent_conn_id;   /* the server connection whose request made the call */
	__u64 start_ns;         /* first write (epoch ns once through the loader) */
	__u64 end_ns;           /* last read (epoch ns once through the loader) */
	__u64 connect_start_ns; /* connect() entry when PC_DF_NEW_CONNECTION, else 0 (epoch ns) */
	__u64 connect_ns;       /* handshake time, SYN sent to established; 0 if unknown */
	__u64 bytes_sent;
	__u64 bytes_received;
	__u32 seq;              /* exchange number on this connection, from 1 */
	__u32 parent_seq;       /* request number on the parent connection */
	__u16 family;
	__u16 local_port;
	__u16 remote_port;
	__u16 req_captured;
	__u16 resp_captured;
	__u16 status;           /* as pc_request.status: from the response's first read */
	__u16 _pad0[2];
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

/* A chunk of captured payload. Arrives before the pc_request with the same conn_id and seq. */
struct pc_data {
	__u32 type;       /* PC_REC_DATA */
	__u8 direction;   /* enum pc_direction */
	__u8 _pad0;
	__u16 len;        /* valid bytes in data[] */
	__u64 conn_id;
	__u32 seq;
	__u32 offset;     /* position of data[0] in the captured stream of this direction */
	__u8 data[PC_DATA_MAX];
};

/*
 * HTTP/2 (bpf/h2.bpf.h). On a connection detected as HTTP/2 (a server's whose first bytes read
 * are the client preface, an outbound one whose first bytes written are, an h2c upgrade), the
 * HTTP/1 rules are off: each read/write syscall becomes one or more pc_h2_io
 * records. The kernel walks the frame headers (they span syscalls and iovecs): it captures every
 * 9-byte frame header and the payloads of every frame but DATA (the first PC_H2_PAYLOAD_MAX
 * bytes of each), and skips DATA payloads. runs[] says where the captured bytes sat: run i is
 * runs[i].captured bytes of data[] (in order) followed by runs[i].skipped bytes not copied. The
 * runs of a syscall's records cover exactly the bytes it moved.
 */
enum pc_h2_limits {
	PC_H2_RUNS_MAX = 32,      /* runs in one pc_h2_io */
	PC_H2_DATA_MAX = 2048,    /* captured bytes in one pc_h2_io */
	PC_H2_HDR_SIZE = 312,     /* bytes of pc_h2_io before data[] */
	PC_H2_PAYLOAD_MAX = 4096, /* bytes captured of one non-DATA frame's payload */
	PC_H2_STEPS = 4096        /* walk steps per syscall (a frame or an iovec each, about) */
};

/* pc_h2_io.flags */
enum pc_h2_flags {
	PC_H2F_LOST = 1 << 0,   /* this direction's walk stopped here or earlier: runs hold
				 * skipped bytes where frame headers were not captured */
	PC_H2F_CLOSED = 1 << 1, /* the process closed the connection (no bytes; `total` is then
				 * the highest client stream id the walk saw, 0 if unknown) */
	PC_H2F_MORE = 1 << 2,   /* another record of the same syscall follows */
	PC_H2F_CLIENT = 1 << 3, /* an outbound connection: the process wrote what `direction`
				 * PC_DIR_REQUEST carries and read PC_DIR_RESPONSE */
	PC_H2F_GAP = 1 << 4,    /* records of this direction before this one were lost (the
				 * full ring buffer refused them). The walk went on: the bytes
				 * of the frame under way then are skipped runs, and the first
				 * captured byte from here on starts a frame header */
	PC_H2F_GAP_HPACK = 1 << 5, /* with PC_H2F_GAP: the lost records held header-block or
				    * SETTINGS bytes (the HPACK table is unknown from here) */
	PC_H2F_GAP_OTHER = 1 << 6  /* records of the other direction were lost since this
				    * direction's previous record: the streams under way lost
				    * frames, whether or not they end before that direction's
				    * own PC_H2F_GAP record */
};

struct pc_h2_run {
	__u32 captured;
	__u32 skipped;
};

struct pc_h2_io {
	__u32 type;       /* PC_REC_H2_IO */
	__u8 direction;   /* PC_DIR_REQUEST: bytes the client sent; PC_DIR_RESPONSE: the server */
	__u8 flags;       /* enum pc_h2_flags */
	__u16 n_runs;
	__u32 pid;
	__u32 tid;
	__u64 conn_id;
	__u64 ts_ns;      /* syscall exit (epoch ns once through the loader) */
	__u64 cpu_ns;     /* on-CPU ns of the thread since its previous tracked syscall (in the
			   * syscall's first record; 0 in the others) */
	__u64 total;      /* bytes the syscall moved (first record; 0 in the others) */
	__u32 data_len;   /* valid bytes in data[] */
	__u32 part;       /* record number within the syscall, from 0 */
	struct pc_h2_run runs[PC_H2_RUNS_MAX];
	__u8 data[PC_H2_DATA_MAX];
};

/* pc_process_env.key */
enum pc_env_key {
	PC_ENV_SERVICE_NAME = 1,        /* OTEL_SERVICE_NAME */
	PC_ENV_RESOURCE_ATTRIBUTES = 2  /* OTEL_RESOURCE_ATTRIBUTES */
};

enum pc_env_limit {
	PC_ENV_VALUE_MAX = 256,
	/* Entries of a new process's environment searched for them (the search costs the exec;
	 * the verifier bounds it). */
	PC_ENV_SCAN_ENTRIES = 384
};

/*
 * An OpenTelemetry identity variable as a process exec'd with it, read from its environment
 * at exec, before the process can rewrite that memory (setproctitle does, and
 * /proc/<pid>/environ then reads as the new title). Children forked later inherit it.
 */
struct pc_process_env {
	__u32 type;      /* PC_REC_PROCESS_ENV */
	__u32 pid;       /* thread-group id that exec'd */
	__u32 key;       /* enum pc_env_key */
	__u32 len;       /* bytes of value, no NUL; PC_ENV_VALUE_MAX when cut */
	char value[PC_ENV_VALUE_MAX];
};

/* Loader counters, after the kernel ones in pc_stats. */
enum pc_loader_counter {
	PC_LCNT_RECORDS_OUT = 0,     /* frames written to stdout */
	PC_LCNT_MALFORMED = 1,       /* ring-buffer items too short for their type */
	PC_LCNT_DRAINS = 2,          /* ring-buffer drain passes */
	PC_LCNT_CONNS_RECLAIMED = 3, /* connection-table entries of fds closed unseen, removed */
	PC_LCNT_MAX = 4
};

/* Written by the loader, not the kernel. */
struct pc_stats {
	__u32 type;       /* PC_REC_STATS */
	__u32 n_kernel;   /* PC_CNT_MAX */
	__u64 kernel[PC_CNT_MAX];   /* enum pc_counter, summed over CPUs */
	__u64 loader[PC_LCNT_MAX];  /* enum pc_loader_counter */
};

/* Written by the loader after each pc_stats, one per serving process with any: the on-CPU ns
 * of its serving threads that no request was charged (kernel map "cpu_unattributed"). With
 * the requests' cpu_ns it adds up to those threads' CPU. */
struct pc_process_cpu {
	__u32 type;       /* PC_REC_PROCESS_CPU */
	__u32 pid;
	__u64 unattributed_ns;
};

/* Written by the loader before each chunk of ring-buffer records (types 1-4) it forwards: the
 * ring position it read them from. The loader gives their ring space back only after writing
 * them, so a loader that dies leaves them in the (pinned) ring; the agent tells the next loader
 * the last mark and how many records after it arrived whole, and those are not sent again. */
struct pc_ring_mark {
	__u32 type;       /* PC_REC_RING_MARK */
	__u32 _pad;
	__u64 pos;
};

/* Written by the loader once after attaching: header, then len bytes of UTF-8 JSON. */
struct pc_loader_info {
	__u32 type;       /* PC_REC_LOADER_INFO */
	__u32 len;
};

/*
 * Control plane (loader -> kernel). Array map "filter_cfg" holds one of these at key 0; a
 * non-zero field switches that filter on, and an accepted connection must then pass every
 * filter that is on. The sets live in hash maps whose value is a __u8 set to 1:
 *   filter_pids (__u32 tgid), filter_ports (__u16 local port, host order),
 *   filter_cgroups (__u64 cgroup v2 id), filter_comms (char[16] comm), ignore_pids (__u32 tgid).
 */
struct pc_filter_cfg {
	__u32 pids_on;
	__u32 ports_on;
	__u32 cgroups_on;
	__u32 comms_on;
};

/* A tracked connection: the process and the fd it uses (key of the kernel's "conns" map). */
struct pc_conn_key {
	__u32 tgid;
	__u32 fd;
};

/* Array map "flush_list", key 0: connections for the listed idle flush (PC_FLUSH_LISTED). */
struct pc_flush_list {
	__u32 n;          /* valid entries in keys[], at most PC_FLUSH_LIST_MAX */
	__u32 _pad;
	struct pc_conn_key keys[PC_FLUSH_LIST_MAX];
};

#endif /* __PERFCATCH_H */
