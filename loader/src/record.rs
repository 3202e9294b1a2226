//! Byte-for-byte mirrors of bpf/perfcatch.h. tests/layout.rs checks them against the BTF of the
//! compiled BPF object, so a change to the header without a change here fails the build's tests.

#![allow(dead_code)] // Some constants exist only to mirror the header (and for the layout test).

// enum pc_abi: sent as "abi" in the loader-info JSON; the agent refuses another
pub const PC_ABI_VERSION: u32 = 3;

// enum pc_flush
/// prctl() option that triggers the idle flush.
pub const PC_FLUSH_PRCTL: libc::c_int = 0x5043_4631;
/// Third prctl() argument for the listed idle flush.
pub const PC_FLUSH_LISTED: libc::c_ulong = 1;
/// Entries of struct pc_flush_list.
pub const PC_FLUSH_LIST_MAX: usize = 64;

// enum pc_data_size
pub const PC_DATA_MAX: usize = 4096;
pub const PC_DATA_HDR_SIZE: usize = 24;

// enum pc_capture_default: the capture sizes when the command line gives none
pub const PC_CAPTURE_REQ_DEFAULT: u32 = 4096;
pub const PC_CAPTURE_RESP_DEFAULT: u32 = 512;

// enum pc_record_type
pub const PC_REC_REQUEST: u32 = 1;
pub const PC_REC_DATA: u32 = 2;
pub const PC_REC_DEPENDENCY: u32 = 3;
pub const PC_REC_PROCESS_ENV: u32 = 4;
pub const PC_REC_H2_IO: u32 = 5;
pub const PC_REC_H2_CONN: u32 = 6;
pub const PC_REC_STATS: u32 = 16;
pub const PC_REC_LOADER_INFO: u32 = 17;
pub const PC_REC_RING_MARK: u32 = 19;
pub const PC_REC_PROCESS_CPU: u32 = 18;

// enum pc_request_flags
pub const PC_F_CONN_CLOSED: u32 = 1 << 0;
pub const PC_F_REQ_TRUNCATED: u32 = 1 << 1;
pub const PC_F_RESP_TRUNCATED: u32 = 1 << 2;
pub const PC_F_DATA_LOST: u32 = 1 << 3;
pub const PC_F_SENDFILE: u32 = 1 << 4;
pub const PC_F_PIPELINED: u32 = 1 << 6;
pub const PC_F_IDLE_FLUSH: u32 = 1 << 7;
pub const PC_F_LATE_WRITE: u32 = 1 << 8;
pub const PC_F_CPU_APPORTIONED: u32 = 1 << 9;
pub const PC_F_H2_MIDWAY: u32 = 1 << 10;
pub const PC_F_H2_CLIENT: u32 = 1 << 11;
pub const PC_F_H2_UPGRADE: u32 = 1 << 12;

// enum pc_dependency_flags
pub const PC_DF_NEW_CONNECTION: u32 = 1 << 0;
pub const PC_DF_CONN_CLOSED: u32 = 1 << 1;
pub const PC_DF_ADOPTED: u32 = 1 << 2;
pub const PC_DF_DATA_LOST: u32 = 1 << 3;
pub const PC_DF_AT_PARENT_END: u32 = 1 << 4;
pub const PC_DF_CALLER_INFERRED: u32 = 1 << 5;

// enum pc_direction
pub const PC_DIR_REQUEST: u8 = 1;
pub const PC_DIR_RESPONSE: u8 = 2;

// enum pc_counter (indexes of the per-CPU array "counters")
pub const PC_CNT_REQUESTS: u32 = 0;
pub const PC_CNT_RB_DROP_REQUEST: u32 = 1;
pub const PC_CNT_RB_DROP_DATA: u32 = 2;
pub const PC_CNT_CONN_ACCEPTED: u32 = 3;
pub const PC_CNT_CONN_TABLE_FULL: u32 = 4;
pub const PC_CNT_CAPTURE_SHED: u32 = 5;
pub const PC_CNT_CONN_FILTERED: u32 = 6;
pub const PC_CNT_CONN_REPLACED: u32 = 7;
pub const PC_CNT_DEPENDENCIES: u32 = 8;
pub const PC_CNT_RB_DROP_DEPENDENCY: u32 = 9;
pub const PC_CNT_DEP_UNATTRIBUTED: u32 = 10;
pub const PC_CNT_CLIENT_CONNS: u32 = 11;
pub const PC_CNT_IDLE_FLUSHES: u32 = 12;
pub const PC_CNT_CPU_UNATTRIBUTED_NS: u32 = 13;
pub const PC_CNT_H2_CONNS: u32 = 14;
pub const PC_CNT_RB_DROP_H2: u32 = 15;
pub const PC_CNT_H2_UNCAPTURED: u32 = 16;
pub const PC_CNT_H2_WALK_LOST: u32 = 17;
pub const PC_CNT_MAX: usize = 18;

// enum pc_loader_counter (indexes of pc_stats.loader)
pub const PC_LCNT_RECORDS_OUT: usize = 0;
pub const PC_LCNT_MALFORMED: usize = 1;
pub const PC_LCNT_DRAINS: usize = 2;
pub const PC_LCNT_CONNS_RECLAIMED: usize = 3;
pub const PC_LCNT_MAX: usize = 4;

/// struct pc_request: one finished server-side request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcRequest {
    pub r#type: u32,
    pub flags: u32,
    pub pid: u32,
    pub tid: u32,
    pub conn_id: u64,
    pub cgroup_id: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub cpu_ns: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub rss_bytes: u64,
    pub seq: u32,
    pub family: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub req_captured: u16,
    pub resp_captured: u16,
    pub status: u16,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub comm: [u8; 16],
    pub peer_conn_id: u64,
    pub cpu_after_response_ns: u64,
}

/// struct pc_dependency: one outbound exchange made while serving a request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcDependency {
    pub r#type: u32,
    pub flags: u32,
    pub pid: u32,
    pub tid: u32,
    pub conn_id: u64,
    pub parent_conn_id: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub connect_start_ns: u64,
    pub connect_ns: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub seq: u32,
    pub parent_seq: u32,
    pub family: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub req_captured: u16,
    pub resp_captured: u16,
    pub status: u16,
    pub _pad0: [u16; 2],
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

/// struct pc_data: a chunk of captured payload. Only PC_DATA_HDR_SIZE + len bytes travel.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PcData {
    pub r#type: u32,
    pub direction: u8,
    pub _pad0: u8,
    pub len: u16,
    pub conn_id: u64,
    pub seq: u32,
    pub offset: u32,
    pub data: [u8; PC_DATA_MAX],
}

/// struct pc_stats: counter snapshot written by the loader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcStats {
    pub r#type: u32,
    pub n_kernel: u32,
    pub kernel: [u64; PC_CNT_MAX],
    pub loader: [u64; PC_LCNT_MAX],
}

/// struct pc_process_cpu: one process's CPU charged to no request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcProcessCpu {
    pub r#type: u32,
    pub pid: u32,
    pub unattributed_ns: u64,
}

impl PcProcessCpu {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&self.r#type.to_le_bytes());
        out[4..8].copy_from_slice(&self.pid.to_le_bytes());
        out[8..16].copy_from_slice(&self.unattributed_ns.to_le_bytes());
        out
    }
}

/// struct pc_loader_info: header of the one-off JSON record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcLoaderInfo {
    pub r#type: u32,
    pub len: u32,
}

/// struct pc_ring_mark: the ring position of the ring-buffer records that follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcRingMark {
    pub r#type: u32,
    pub _pad: u32,
    pub pos: u64,
}

/// struct pc_filter_cfg: value at key 0 of the array map "filter_cfg".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcFilterCfg {
    pub pids_on: u32,
    pub ports_on: u32,
    pub cgroups_on: u32,
    pub comms_on: u32,
}

// SAFETY: repr(C), only integer fields and no padding, so every bit pattern is valid.
unsafe impl aya::Pod for PcFilterCfg {}

// enum pc_env_key
pub const PC_ENV_SERVICE_NAME: u32 = 1;
pub const PC_ENV_RESOURCE_ATTRIBUTES: u32 = 2;

// enum pc_env_limit
pub const PC_ENV_VALUE_MAX: usize = 256;
/// Environment entries the kernel searches at exec (mirrored for the layout test only).
pub const PC_ENV_SCAN_ENTRIES: usize = 384;

/// struct pc_process_env: an OpenTelemetry variable a process exec'd with.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcProcessEnv {
    pub r#type: u32,
    pub pid: u32,
    pub key: u32,
    pub len: u32,
    pub value: [u8; PC_ENV_VALUE_MAX],
}
pub const PC_PROCESS_ENV_SIZE: usize = std::mem::size_of::<PcProcessEnv>();

/// struct pc_conn_key: key of the kernel's "conns" map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcConnKey {
    pub tgid: u32,
    pub fd: u32,
}

/// struct pc_flush_list: value at key 0 of the array map "flush_list".
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcFlushList {
    pub n: u32,
    pub _pad: u32,
    pub keys: [PcConnKey; PC_FLUSH_LIST_MAX],
}

impl Default for PcFlushList {
    fn default() -> Self {
        PcFlushList { n: 0, _pad: 0, keys: [PcConnKey::default(); PC_FLUSH_LIST_MAX] }
    }
}

// SAFETY: repr(C), only integer fields and no padding, so every bit pattern is valid.
unsafe impl aya::Pod for PcConnKey {}
// SAFETY: as above.
unsafe impl aya::Pod for PcFlushList {}

// HTTP/2 (bpf/h2.bpf.h): enum pc_h2_limits, enum pc_h2_flags, struct pc_h2_run, struct pc_h2_io.
pub const PC_H2_RUNS_MAX: usize = 32;
pub const PC_H2_DATA_MAX: usize = 2048;
pub const PC_H2_HDR_SIZE: usize = 312;
pub const PC_H2_PAYLOAD_MAX: usize = 4096;
pub const PC_H2_STEPS: usize = 4096;
pub const PC_H2F_LOST: u8 = 1 << 0;
pub const PC_H2F_CLOSED: u8 = 1 << 1;
pub const PC_H2F_MORE: u8 = 1 << 2;
pub const PC_H2F_CLIENT: u8 = 1 << 3;
pub const PC_H2F_GAP: u8 = 1 << 4;
pub const PC_H2F_GAP_HPACK: u8 = 1 << 5;
pub const PC_H2F_GAP_OTHER: u8 = 1 << 6;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcH2Run {
    pub captured: u32,
    pub skipped: u32,
}

/// struct pc_h2_io: one read/write (part) on an HTTP/2 connection; frames carry only
/// PC_H2_HDR_SIZE + data_len bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcH2Io {
    pub r#type: u32,
    pub direction: u8,
    pub flags: u8,
    pub n_runs: u16,
    pub pid: u32,
    pub tid: u32,
    pub conn_id: u64,
    pub ts_ns: u64,
    pub cpu_ns: u64,
    pub total: u64,
    pub data_len: u32,
    pub part: u32,
    pub runs: [PcH2Run; PC_H2_RUNS_MAX],
    pub data: [u8; PC_H2_DATA_MAX],
}
pub const H2_TS_NS_OFF: usize = std::mem::offset_of!(PcH2Io, ts_ns);
pub const H2_DATA_LEN_OFF: usize = std::mem::offset_of!(PcH2Io, data_len);
const _: () = assert!(std::mem::offset_of!(PcH2Io, data) == PC_H2_HDR_SIZE);

// Byte offsets the loader touches directly in ring-buffer items.
pub const REQ_START_NS_OFF: usize = std::mem::offset_of!(PcRequest, start_ns);
pub const REQ_END_NS_OFF: usize = std::mem::offset_of!(PcRequest, end_ns);
pub const DATA_LEN_OFF: usize = std::mem::offset_of!(PcData, len);
pub const PC_REQUEST_SIZE: usize = std::mem::size_of::<PcRequest>();
pub const DEP_START_NS_OFF: usize = std::mem::offset_of!(PcDependency, start_ns);
pub const DEP_END_NS_OFF: usize = std::mem::offset_of!(PcDependency, end_ns);
pub const DEP_CONNECT_START_NS_OFF: usize = std::mem::offset_of!(PcDependency, connect_start_ns);
pub const PC_DEPENDENCY_SIZE: usize = std::mem::size_of::<PcDependency>();

// The header promises sizes that are multiples of 8 and a fixed pc_data header size.
const _: () = assert!(std::mem::offset_of!(PcData, data) == PC_DATA_HDR_SIZE);
const _: () = assert!(PC_REQUEST_SIZE.is_multiple_of(8));
const _: () = assert!(std::mem::size_of::<PcStats>().is_multiple_of(8));
const _: () = assert!(std::mem::size_of::<PcLoaderInfo>() == 8);

impl PcStats {
    /// Serializes to the little-endian wire layout (same as the in-memory one on x86-64/arm64).
    pub fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(std::mem::size_of::<Self>());
        out.extend_from_slice(&self.r#type.to_le_bytes());
        out.extend_from_slice(&self.n_kernel.to_le_bytes());
        for v in self.kernel.iter().chain(self.loader.iter()) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// Reads a little-endian u32 at `off`; None when the slice is too short.
pub fn read_u32(buf: &[u8], off: usize) -> Option<u32> {
    buf.get(off..off + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
}

/// Reads a little-endian u16 at `off`; None when the slice is too short.
pub fn read_u16(buf: &[u8], off: usize) -> Option<u16> {
    buf.get(off..off + 2).map(|b| u16::from_le_bytes(b.try_into().unwrap()))
}

/// Reads a little-endian u64 at `off`; None when the slice is too short.
pub fn read_u64(buf: &[u8], off: usize) -> Option<u64> {
    buf.get(off..off + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn stats_bytes_match_struct_size() {
        let s = PcStats { r#type: PC_REC_STATS, n_kernel: PC_CNT_MAX as u32, ..Default::default() };
        assert_eq!(s.to_bytes().len(), size_of::<PcStats>());
        assert_eq!(read_u32(&s.to_bytes(), 0), Some(PC_REC_STATS));
    }

    #[test]
    fn sizes_from_header_arithmetic() {
        assert_eq!(size_of::<PcRequest>(), 160);
        assert_eq!(size_of::<PcDependency>(), 136);
        assert_eq!(size_of::<PcData>(), PC_DATA_HDR_SIZE + PC_DATA_MAX);
        assert_eq!(size_of::<PcStats>(), 8 + 8 * (PC_CNT_MAX + PC_LCNT_MAX));
        assert_eq!(size_of::<PcFilterCfg>(), 16);
    }
}
