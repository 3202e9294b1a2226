/**
 * Decodes one loader frame into a typed record. This is where kernel bytes become objects;
 * offsets come from layout.ts, the mirror of bpf/perfcatch.h.
 */
import {
  AF_INET,
  DATA,
  DEPENDENCY,
  KERNEL_COUNTERS,
  LOADER_COUNTERS,
  EnvKey,
  H2_IO,
  H2_RUN,
  LOADER_INFO,
  PROCESS_CPU,
  RING_MARK,
  PROCESS_ENV,
  RecordType,
  REQUEST,
  STATS,
} from './layout.ts';

export interface KernelRequest {
  kind: 'request';
  flags: number;
  pid: number;
  tid: number;
  /** Below 2^53 (see bpf/perfcatch.h), so a number. */
  connId: number;
  cgroupId: number;
  /** Epoch nanoseconds (the loader converted them from CLOCK_MONOTONIC). */
  startNs: bigint;
  endNs: bigint;
  cpuNs: number;
  bytesReceived: number;
  bytesSent: number;
  rssBytes: number;
  seq: number;
  family: number;
  localPort: number;
  remotePort: number;
  reqCaptured: number;
  respCaptured: number;
  /** The final status the kernel read from the response's first write; 0: read it from the
   * captured head (an interim 1xx, a split status line). */
  status: number;
  localAddr: string;
  remoteAddr: string;
  comm: string;
  /** The caller's client conn_id when the caller is tracked on this host, else 0. */
  peerConnId: number;
  /** CPU its thread ran after the response's last write (not in cpuNs). */
  cpuAfterResponseNs: number;
}

export interface KernelDependency {
  kind: 'dependency';
  flags: number;
  pid: number;
  tid: number;
  connId: number;
  parentConnId: number;
  startNs: bigint;
  endNs: bigint;
  /** Epoch ns of connect() when this exchange opened the connection, else 0n. */
  connectStartNs: bigint;
  connectNs: number;
  bytesSent: number;
  bytesReceived: number;
  seq: number;
  parentSeq: number;
  family: number;
  localPort: number;
  remotePort: number;
  reqCaptured: number;
  respCaptured: number;
  /** As KernelRequest.status, from the response's first read. */
  status: number;
  localAddr: string;
  remoteAddr: string;
}

export interface KernelData {
  kind: 'data';
  direction: number;
  connId: number;
  seq: number;
  offset: number;
  /**
   * A view into the frame, valid only while the frame is handled (see FrameReader.push in
   * src/decode/frame-reader.ts) and the stdout chunk it came in: whoever keeps the bytes
   * longer copies them, as the assembler does (RequestAssembler.detach).
   */
  bytes: Buffer;
}

export interface LoaderStats {
  kind: 'stats';
  kernel: Record<string, number>;
  loader: Record<string, number>;
}

export interface LoaderInfo {
  kind: 'loader_info';
  info: Record<string, unknown>;
}

/** An OpenTelemetry variable a process exec'd with (bpf/process_identity.bpf.c). */
export interface ProcessEnv {
  kind: 'process_env';
  pid: number;
  name: 'OTEL_SERVICE_NAME' | 'OTEL_RESOURCE_ATTRIBUTES';
  value: string;
}

/** A process's serving-thread CPU that no request was charged, cumulative (loader, with stats). */
export interface ProcessCpu {
  kind: 'process_cpu';
  pid: number;
  unattributedNs: number;
}

/**
 * The ring position the ring-buffer records that follow were read from (loader). The loader
 * gives their ring space back only once it has written them; the agent tells the next loader
 * the last mark and how many records after it arrived whole (src/loader/loader-process.ts).
 */
export interface RingMark {
  kind: 'ring_mark';
  pos: number;
}

/** An HTTP/2 connection the kernel detected (bpf/h2.bpf.h): a pc_request layout, announcing it. */
export interface KernelH2Conn extends Omit<KernelRequest, 'kind'> {
  kind: 'h2_conn';
}

/** One captured run of a pc_h2_io: `bytes` captured, then `skipped` bytes not copied. */
export interface H2Run {
  bytes: Buffer;
  skipped: number;
}

/** One read/write (or part of one) on an HTTP/2 connection (struct pc_h2_io). */
export interface KernelH2Io {
  kind: 'h2_io';
  direction: number;
  flags: number;
  pid: number;
  tid: number;
  connId: number;
  /** Epoch ns (the loader converted it). */
  tsNs: bigint;
  cpuNs: number;
  total: number;
  part: number;
  /** Views into the frame, valid while the frame is handled. */
  runs: H2Run[];
}

export type DecodedRecord =
  | KernelRequest
  | KernelDependency
  | KernelData
  | LoaderStats
  | LoaderInfo
  | ProcessEnv
  | ProcessCpu
  | KernelH2Conn
  | KernelH2Io
  | RingMark;

export class RecordDecodeError extends Error {}

/** A u64 known to be below 2^53 (ids, counts, bytes) as a number: no BigInt per field. */
function u64(f: Buffer, offset: number): number {
  return f.readUInt32LE(offset) + f.readUInt32LE(offset + 4) * 0x1_0000_0000;
}

/**
 * A u64 that may pass 2^53 (wall-clock ns) as a BigInt, through a DataView over the frame's
 * memory (one per stdout chunk): Buffer.readBigUInt64LE builds it from two halves with BigInt
 * arithmetic, four BigInts a field.
 */
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(8));
function bigU64(f: Buffer, offset: number): bigint {
  // The view spans the whole chunk: the frame's own end is checked here.
  if (!(offset >= 0 && offset + 8 <= f.length)) throw new RecordDecodeError(`u64 at ${offset} past the ${f.length}-byte record`);
  if (view.buffer !== f.buffer) view = new DataView(f.buffer);
  return view.getBigUint64(f.byteOffset + offset, true);
}

function cString(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('latin1', start, end === -1 || end > start + len ? start + len : end);
}

/** Formats an address as stored by the kernel: IPv4 in the first 4 bytes, else 16 bytes. */
const ipv4Names = new Map<number, string>();

export function formatAddress(buf: Buffer, start: number, family: number): string {
  if (family === AF_INET) {
    // Few distinct peers, many requests: remember the strings (bounded).
    const n = buf.readUInt32BE(start);
    let name = ipv4Names.get(n);
    if (name === undefined) {
      name = `${buf[start]}.${buf[start + 1]}.${buf[start + 2]}.${buf[start + 3]}`;
      if (ipv4Names.size >= 4096) ipv4Names.clear();
      ipv4Names.set(n, name);
    }
    return name;
  }
  const b = buf.subarray(start, start + 16);
  // IPv4-mapped IPv6 (::ffff:a.b.c.d): report the IPv4 address, as clients see it.
  if (b.readUInt32BE(0) === 0 && b.readUInt32BE(4) === 0 && b.readUInt32BE(8) === 0xffff) {
    return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return groups.join(':');
  const head = groups.slice(0, bestStart).join(':');
  const tail = groups.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

function decodeRequest(f: Buffer): KernelRequest {
  if (f.length < REQUEST.size) throw new RecordDecodeError(`request record too short: ${f.length}`);
  const family = f.readUInt16LE(REQUEST.family);
  return {
    kind: 'request',
    flags: f.readUInt32LE(REQUEST.flags),
    pid: f.readUInt32LE(REQUEST.pid),
    tid: f.readUInt32LE(REQUEST.tid),
    connId: u64(f, REQUEST.conn_id),
    cgroupId: u64(f, REQUEST.cgroup_id),
    startNs: bigU64(f, REQUEST.start_ns),
    endNs: bigU64(f, REQUEST.end_ns),
    cpuNs: u64(f, REQUEST.cpu_ns),
    bytesReceived: u64(f, REQUEST.bytes_received),
    bytesSent: u64(f, REQUEST.bytes_sent),
    rssBytes: u64(f, REQUEST.rss_bytes),
    seq: f.readUInt32LE(REQUEST.seq),
    family,
    localPort: f.readUInt16LE(REQUEST.local_port),
    remotePort: f.readUInt16LE(REQUEST.remote_port),
    reqCaptured: f.readUInt16LE(REQUEST.req_captured),
    respCaptured: f.readUInt16LE(REQUEST.resp_captured),
    status: f.readUInt16LE(REQUEST.status),
    localAddr: formatAddress(f, REQUEST.local_addr, family),
    remoteAddr: formatAddress(f, REQUEST.remote_addr, family),
    comm: cString(f, REQUEST.comm, 16),
    peerConnId: u64(f, REQUEST.peer_conn_id),
    cpuAfterResponseNs: u64(f, REQUEST.cpu_after_response_ns),
  };
}

function decodeDependency(f: Buffer): KernelDependency {
  if (f.length < DEPENDENCY.size) throw new RecordDecodeError(`dependency record too short: ${f.length}`);
  const family = f.readUInt16LE(DEPENDENCY.family);
  return {
    kind: 'dependency',
    flags: f.readUInt32LE(DEPENDENCY.flags),
    pid: f.readUInt32LE(DEPENDENCY.pid),
    tid: f.readUInt32LE(DEPENDENCY.tid),
    connId: u64(f, DEPENDENCY.conn_id),
    parentConnId: u64(f, DEPENDENCY.parent_conn_id),
    startNs: bigU64(f, DEPENDENCY.start_ns),
    endNs: bigU64(f, DEPENDENCY.end_ns),
    connectStartNs: bigU64(f, DEPENDENCY.connect_start_ns),
    connectNs: u64(f, DEPENDENCY.connect_ns),
    bytesSent: u64(f, DEPENDENCY.bytes_sent),
    bytesReceived: u64(f, DEPENDENCY.bytes_received),
    seq: f.readUInt32LE(DEPENDENCY.seq),
    parentSeq: f.readUInt32LE(DEPENDENCY.parent_seq),
    family,
    localPort: f.readUInt16LE(DEPENDENCY.local_port),
    remotePort: f.readUInt16LE(DEPENDENCY.remote_port),
    reqCaptured: f.readUInt16LE(DEPENDENCY.req_captured),
    respCaptured: f.readUInt16LE(DEPENDENCY.resp_captured),
    status: f.readUInt16LE(DEPENDENCY.status),
    localAddr: formatAddress(f, DEPENDENCY.local_addr, family),
    remoteAddr: formatAddress(f, DEPENDENCY.remote_addr, family),
  };
}

function decodeH2Io(f: Buffer): KernelH2Io {
  if (f.length < H2_IO.data) throw new RecordDecodeError(`h2 record too short: ${f.length}`);
  const dataLen = f.readUInt32LE(H2_IO.data_len);
  const nRuns = f.readUInt16LE(H2_IO.n_runs);
  if (H2_IO.data + dataLen > f.length || nRuns > (H2_IO.data - H2_IO.runs) / H2_RUN.size) {
    throw new RecordDecodeError(`h2 record inconsistent: data_len ${dataLen}, runs ${nRuns}, frame ${f.length}`);
  }
  const runs: H2Run[] = [];
  let at = H2_IO.data;
  const end = H2_IO.data + dataLen;
  for (let i = 0; i < nRuns; i++) {
    const base = H2_IO.runs + i * H2_RUN.size;
    const captured = f.readUInt32LE(base + H2_RUN.captured);
    if (at + captured > end) throw new RecordDecodeError('h2 record runs exceed its data');
    runs.push({ bytes: f.subarray(at, at + captured), skipped: f.readUInt32LE(base + H2_RUN.skipped) });
    at += captured;
  }
  return {
    kind: 'h2_io',
    direction: f.readUInt8(H2_IO.direction),
    flags: f.readUInt8(H2_IO.flags),
    pid: f.readUInt32LE(H2_IO.pid),
    tid: f.readUInt32LE(H2_IO.tid),
    connId: u64(f, H2_IO.conn_id),
    tsNs: bigU64(f, H2_IO.ts_ns),
    cpuNs: u64(f, H2_IO.cpu_ns),
    total: u64(f, H2_IO.total),
    part: f.readUInt32LE(H2_IO.part),
    runs,
  };
}

function decodeData(f: Buffer): KernelData {
  if (f.length < DATA.data) throw new RecordDecodeError(`data record too short: ${f.length}`);
  const len = f.readUInt16LE(DATA.len);
  if (DATA.data + len > f.length) throw new RecordDecodeError(`data record truncated: len ${len}, frame ${f.length}`);
  return {
    kind: 'data',
    direction: f.readUInt8(DATA.direction),
    connId: u64(f, DATA.conn_id),
    seq: f.readUInt32LE(DATA.seq),
    offset: f.readUInt32LE(DATA.offset),
    // A view, not a copy: most frames are dropped or consumed at once, and the one consumer
    // that keeps bytes (the assembler) copies them into memory of their own.
    bytes: f.subarray(DATA.data, DATA.data + len),
  };
}

function decodeStats(f: Buffer): LoaderStats {
  if (f.length < STATS.size) throw new RecordDecodeError(`stats record too short: ${f.length}`);
  const kernel: Record<string, number> = {};
  KERNEL_COUNTERS.forEach((name, i) => {
    kernel[name] = Number(bigU64(f, STATS.kernel + 8 * i));
  });
  const loader: Record<string, number> = {};
  LOADER_COUNTERS.forEach((name, i) => {
    loader[name] = Number(bigU64(f, STATS.loader + 8 * i));
  });
  return { kind: 'stats', kernel, loader };
}

function decodeLoaderInfo(f: Buffer): LoaderInfo {
  const len = f.length >= LOADER_INFO.size ? f.readUInt32LE(LOADER_INFO.len) : -1;
  if (len < 0 || LOADER_INFO.size + len > f.length) throw new RecordDecodeError('loader info truncated');
  const text = f.toString('utf8', LOADER_INFO.size, LOADER_INFO.size + len);
  let info: unknown;
  try {
    info = JSON.parse(text);
  } catch {
    throw new RecordDecodeError('loader info is not JSON');
  }
  if (typeof info !== 'object' || info === null || Array.isArray(info)) throw new RecordDecodeError('loader info is not a JSON object');
  return { kind: 'loader_info', info: info as Record<string, unknown> };
}

function decodeProcessEnv(f: Buffer): ProcessEnv {
  if (f.length < PROCESS_ENV.size) throw new RecordDecodeError(`process env record too short: ${f.length}`);
  const key = f.readUInt32LE(PROCESS_ENV.key);
  const len = f.readUInt32LE(PROCESS_ENV.len);
  if (len > PROCESS_ENV.size - PROCESS_ENV.value) throw new RecordDecodeError(`process env value length ${len}`);
  const name =
    key === EnvKey.SERVICE_NAME ? 'OTEL_SERVICE_NAME' : key === EnvKey.RESOURCE_ATTRIBUTES ? 'OTEL_RESOURCE_ATTRIBUTES' : null;
  if (!name) throw new RecordDecodeError(`unknown process env key ${key}`);
  const value = f.toString('utf8', PROCESS_ENV.value, PROCESS_ENV.value + len);
  return { kind: 'process_env', pid: f.readUInt32LE(PROCESS_ENV.pid), name, value };
}

function decodeProcessCpu(f: Buffer): ProcessCpu {
  if (f.length < PROCESS_CPU.size) throw new RecordDecodeError(`process cpu record too short: ${f.length}`);
  return { kind: 'process_cpu', pid: f.readUInt32LE(PROCESS_CPU.pid), unattributedNs: Number(bigU64(f, PROCESS_CPU.unattributed_ns)) };
}

export function decodeRecord(frame: Buffer): DecodedRecord {
  if (frame.length < 4) throw new RecordDecodeError(`frame too short: ${frame.length}`);
  const type = frame.readUInt32LE(0);
  switch (type) {
    case RecordType.REQUEST:
      return decodeRequest(frame);
    case RecordType.DATA:
      return decodeData(frame);
    case RecordType.DEPENDENCY:
      return decodeDependency(frame);
    case RecordType.H2_CONN:
      return { ...decodeRequest(frame), kind: 'h2_conn' };
    case RecordType.H2_IO:
      return decodeH2Io(frame);
    case RecordType.PROCESS_ENV:
      return decodeProcessEnv(frame);
    case RecordType.STATS:
      return decodeStats(frame);
    case RecordType.PROCESS_CPU:
      return decodeProcessCpu(frame);
    case RecordType.LOADER_INFO:
      return decodeLoaderInfo(frame);
    case RecordType.RING_MARK:
      if (frame.length < RING_MARK.size) throw new RecordDecodeError(`ring mark too short: ${frame.length}`);
      return { kind: 'ring_mark', pos: Number(bigU64(frame, RING_MARK.pos)) };
    default:
      throw new RecordDecodeError(`unknown record type ${type}`);
  }
}
