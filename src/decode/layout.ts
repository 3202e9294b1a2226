/**
 * TypeScript mirror of bpf/perfcatch.h: record types, sizes, field offsets and enum values.
 * test/unit/layout.test.ts compares every number here with the BTF of the compiled object and
 * fails when the header changes without this file.
 */

export const RecordType = {
  REQUEST: 1,
  DATA: 2,
  DEPENDENCY: 3,
  PROCESS_ENV: 4,
  H2_IO: 5,
  H2_CONN: 6,
  STATS: 16,
  PROCESS_CPU: 18,
  LOADER_INFO: 17,
  RING_MARK: 19,
} as const;

export const RequestFlags = {
  CONN_CLOSED: 1 << 0,
  REQ_TRUNCATED: 1 << 1,
  RESP_TRUNCATED: 1 << 2,
  DATA_LOST: 1 << 3,
  SENDFILE: 1 << 4,
  PIPELINED: 1 << 6,
  IDLE_FLUSH: 1 << 7,
  LATE_WRITE: 1 << 8,
  CPU_APPORTIONED: 1 << 9,
  H2_MIDWAY: 1 << 10,
  H2_CLIENT: 1 << 11,
  H2_UPGRADE: 1 << 12,
} as const;

export const DependencyFlags = {
  NEW_CONNECTION: 1 << 0,
  CONN_CLOSED: 1 << 1,
  ADOPTED: 1 << 2,
  DATA_LOST: 1 << 3,
  AT_PARENT_END: 1 << 4,
  CALLER_INFERRED: 1 << 5,
} as const;

export const Direction = {
  REQUEST: 1,
  RESPONSE: 2,
} as const;

/** enum pc_counter, by index; names are the enum names without PC_CNT_, lowercased. */
export const KERNEL_COUNTERS = [
  'requests',
  'rb_drop_request',
  'rb_drop_data',
  'conn_accepted',
  'conn_table_full',
  'capture_shed',
  'conn_filtered',
  'conn_replaced',
  'dependencies',
  'rb_drop_dependency',
  'dep_unattributed',
  'client_conns',
  'idle_flushes',
  'cpu_unattributed_ns',
  'h2_conns',
  'rb_drop_h2',
  'h2_uncaptured',
  'h2_walk_lost',
] as const;
export const PC_CNT_MAX = 18;

/** enum pc_loader_counter, by index (PC_LCNT_MAX leaves room for more). */
export const LOADER_COUNTERS = ['records_out', 'malformed', 'drains', 'conns_reclaimed'] as const;
export const PC_LCNT_MAX = 4;

/** enum pc_abi: the loader sends it as "abi" in its loader-info JSON; the agent refuses another. */
export const PC_ABI_VERSION = 3;

/** enum pc_data_size */
export const PC_DATA_MAX = 4096;
export const PC_DATA_HDR_SIZE = 24;

/** struct pc_request */
export const REQUEST = {
  size: 160,
  type: 0,
  flags: 4,
  pid: 8,
  tid: 12,
  conn_id: 16,
  cgroup_id: 24,
  start_ns: 32,
  end_ns: 40,
  cpu_ns: 48,
  bytes_received: 56,
  bytes_sent: 64,
  rss_bytes: 72,
  seq: 80,
  family: 84,
  local_port: 86,
  remote_port: 88,
  req_captured: 90,
  resp_captured: 92,
  status: 94,
  local_addr: 96,
  remote_addr: 112,
  comm: 128,
  peer_conn_id: 144,
  cpu_after_response_ns: 152,
} as const;

/** struct pc_dependency */
export const DEPENDENCY = {
  size: 136,
  type: 0,
  flags: 4,
  pid: 8,
  tid: 12,
  conn_id: 16,
  parent_conn_id: 24,
  start_ns: 32,
  end_ns: 40,
  connect_start_ns: 48,
  connect_ns: 56,
  bytes_sent: 64,
  bytes_received: 72,
  seq: 80,
  parent_seq: 84,
  family: 88,
  local_port: 90,
  remote_port: 92,
  req_captured: 94,
  resp_captured: 96,
  status: 98,
  _pad0: 100,
  local_addr: 104,
  remote_addr: 120,
} as const;

/** struct pc_data (size includes the full PC_DATA_MAX payload; frames carry only len bytes) */
export const DATA = {
  size: 4120,
  type: 0,
  direction: 4,
  _pad0: 5,
  len: 6,
  conn_id: 8,
  seq: 16,
  offset: 20,
  data: 24,
} as const;

/** struct pc_stats */
export const STATS = {
  size: 184,
  type: 0,
  n_kernel: 4,
  kernel: 8,
  loader: 152,
} as const;

/** enum pc_h2_limits (bpf/h2.bpf.h) */
export const PC_H2_RUNS_MAX = 32;
export const PC_H2_DATA_MAX = 2048;
export const PC_H2_HDR_SIZE = 312;
export const PC_H2_PAYLOAD_MAX = 4096;
export const PC_H2_STEPS = 4096;

/** enum pc_h2_flags */
export const H2Flags = {
  LOST: 1 << 0,
  CLOSED: 1 << 1,
  MORE: 1 << 2,
  CLIENT: 1 << 3,
  GAP: 1 << 4,
  GAP_HPACK: 1 << 5,
  GAP_OTHER: 1 << 6,
} as const;

/** struct pc_h2_run */
export const H2_RUN = {
  size: 8,
  captured: 0,
  skipped: 4,
} as const;

/** struct pc_h2_io (size includes the full PC_H2_DATA_MAX; frames carry only data_len bytes) */
export const H2_IO = {
  size: 2360,
  type: 0,
  direction: 4,
  flags: 5,
  n_runs: 6,
  pid: 8,
  tid: 12,
  conn_id: 16,
  ts_ns: 24,
  cpu_ns: 32,
  total: 40,
  data_len: 48,
  part: 52,
  runs: 56,
  data: 312,
} as const;

/** struct pc_loader_info (followed by len bytes of JSON) */
export const LOADER_INFO = {
  size: 8,
  type: 0,
  len: 4,
} as const;

/** struct pc_ring_mark (written by the loader before each chunk of ring-buffer records) */
export const RING_MARK = {
  size: 16,
  type: 0,
  _pad: 4,
  pos: 8,
} as const;

/** struct pc_process_cpu (written by the loader) */
export const PROCESS_CPU = {
  size: 16,
  type: 0,
  pid: 4,
  unattributed_ns: 8,
} as const;

/** enum pc_env_key */
export const EnvKey = {
  SERVICE_NAME: 1,
  RESOURCE_ATTRIBUTES: 2,
} as const;

/** struct pc_process_env */
export const PROCESS_ENV = {
  size: 272,
  type: 0,
  pid: 4,
  key: 8,
  len: 12,
  value: 16,
} as const;

/** struct pc_filter_cfg (written by the loader; mirrored so the layout test covers it) */
export const FILTER_CFG = {
  size: 16,
  pids_on: 0,
  ports_on: 4,
  cgroups_on: 8,
  comms_on: 12,
} as const;

export const AF_INET = 2;
export const AF_INET6 = 10;
