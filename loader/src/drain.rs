//! Ring buffer -> stdout frames. The BPF side submits with BPF_RB_NO_WAKEUP most of the time, so
//! a timer drives most passes; epoll readiness covers the "buffer getting full" wakeups.

use std::io::{self, BufWriter, Write};

use crate::record::*;
use crate::ring::Ring;

/// Upper bound on items per pass so a flood cannot starve the timers and the control channel.
/// A pass cut short at this bound is followed by another at once (`Pass::cut_short`), not at the
/// next tick: the kernel wakes the loader only as unread data crosses a threshold, so a
/// backlog left above it would wait for the timer (with 500 ms ticks, at most 131,072 items a
/// second would be read).
const MAX_ITEMS_PER_PASS: usize = 1 << 16;

/// A pass gives ring space back (and writes a new mark) every this many bytes read, so that a
/// long pass does not hold the ring's space while the agent reads.
const CHUNK_BYTES: usize = 256 << 10;

/// Buffered frame output plus the loader's own counters (they describe what went out).
pub struct Output<W: Write> {
    out: BufWriter<W>,
    pub loader: [u64; PC_LCNT_MAX],
    scratch: Vec<u8>,
}

impl<W: Write> Output<W> {
    pub fn new(w: W) -> Self {
        Output {
            out: BufWriter::with_capacity(1 << 20, w),
            loader: [0; PC_LCNT_MAX],
            scratch: Vec::with_capacity(PC_DATA_HDR_SIZE + PC_DATA_MAX),
        }
    }

    /// Writes one frame: little-endian u32 total length of `parts`, then the parts.
    pub fn write_frame(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.out.write_all(&(len as u32).to_le_bytes())?;
        for p in parts {
            self.out.write_all(p)?;
        }
        self.loader[PC_LCNT_RECORDS_OUT] += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// A PC_REC_RING_MARK frame: the ring items that follow were read from ring position `pos`
    /// on, and are given back to the kernel only once written (crate::ring).
    pub fn write_mark(&mut self, pos: u64) -> io::Result<()> {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&PC_REC_RING_MARK.to_le_bytes());
        b[8..16].copy_from_slice(&pos.to_le_bytes());
        self.write_frame(&[&b])
    }

    /// As emit_item, for an item already in a buffer of ours (rewritten in place).
    pub fn emit_buf(&mut self, item: &mut [u8], mono_to_epoch: i64) -> io::Result<()> {
        match prepare_item(item, mono_to_epoch) {
            Some(len) => self.write_frame(&[&item[..len]]),
            None => {
                self.loader[PC_LCNT_MALFORMED] += 1;
                Ok(())
            }
        }
    }

    /// Validates one ring-buffer item, rewrites its clocks and writes it as a frame.
    /// Malformed items are counted and skipped, never fatal.
    pub fn emit_item(&mut self, item: &[u8], mono_to_epoch: i64) -> io::Result<()> {
        // Ring-buffer items are only 8-byte aligned by accident; copying to our own buffer
        // makes every later read a plain slice read.
        self.scratch.clear();
        self.scratch.extend_from_slice(item);
        let mut scratch = std::mem::take(&mut self.scratch);
        let res = match prepare_item(&mut scratch, mono_to_epoch) {
            Some(len) => self.write_frame(&[&scratch[..len]]),
            None => {
                self.loader[PC_LCNT_MALFORMED] += 1;
                Ok(())
            }
        };
        self.scratch = scratch;
        res
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out.into_inner().map_err(|e| e.into_error()).unwrap()
    }
}

/// Checks type and length, rewrites pc_request and pc_dependency times in place. Returns the frame length, or None
/// for an item that is malformed (unknown type, too short, impossible pc_data.len).
pub fn prepare_item(buf: &mut [u8], mono_to_epoch: i64) -> Option<usize> {
    match read_u32(buf, 0)? {
        PC_REC_REQUEST if buf.len() >= PC_REQUEST_SIZE => {
            rewrite_time(buf, REQ_START_NS_OFF, mono_to_epoch);
            rewrite_time(buf, REQ_END_NS_OFF, mono_to_epoch);
            Some(buf.len())
        }
        PC_REC_DEPENDENCY if buf.len() >= PC_DEPENDENCY_SIZE => {
            rewrite_time(buf, DEP_START_NS_OFF, mono_to_epoch);
            rewrite_time(buf, DEP_END_NS_OFF, mono_to_epoch);
            rewrite_time(buf, DEP_CONNECT_START_NS_OFF, mono_to_epoch);
            Some(buf.len())
        }
        PC_REC_PROCESS_ENV if buf.len() >= PC_PROCESS_ENV_SIZE => Some(buf.len()),
        // HTTP/2 (bpf/h2.bpf.h): a connection is announced as a pc_request; its I/O as pc_h2_io.
        PC_REC_H2_CONN if buf.len() >= PC_REQUEST_SIZE => {
            rewrite_time(buf, REQ_START_NS_OFF, mono_to_epoch);
            rewrite_time(buf, REQ_END_NS_OFF, mono_to_epoch);
            Some(buf.len())
        }
        PC_REC_H2_IO if buf.len() >= PC_H2_HDR_SIZE => {
            let len = read_u32(buf, H2_DATA_LEN_OFF)? as usize;
            if len > PC_H2_DATA_MAX || buf.len() < PC_H2_HDR_SIZE + len {
                return None;
            }
            rewrite_time(buf, H2_TS_NS_OFF, mono_to_epoch);
            Some(PC_H2_HDR_SIZE + len)
        }
        PC_REC_DATA if buf.len() >= PC_DATA_HDR_SIZE => {
            let len = read_u16(buf, DATA_LEN_OFF)? as usize;
            if len > PC_DATA_MAX {
                return None;
            }
            // The kernel may reserve a fixed-size slot; only header + len bytes are meaningful.
            Some(buf.len().min(PC_DATA_HDR_SIZE + len))
        }
        _ => None,
    }
}

/// Adds the monotonic->epoch offset to the u64 at `off`. Zero means "unset" and stays zero.
fn rewrite_time(buf: &mut [u8], off: usize, mono_to_epoch: i64) {
    let Some(mono) = read_u64(buf, off) else { return };
    if mono == 0 {
        return;
    }
    let epoch = (mono as i128 + mono_to_epoch as i128).clamp(0, u64::MAX as i128) as u64;
    buf[off..off + 8].copy_from_slice(&epoch.to_le_bytes());
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-pointer; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// realtime - monotonic, with the realtime read bracketed by two monotonic reads and compared
/// with their midpoint, so the error is at most half the bracket width.
pub fn mono_to_epoch_offset() -> i64 {
    let m1 = clock_ns(libc::CLOCK_MONOTONIC);
    let rt = clock_ns(libc::CLOCK_REALTIME);
    let m2 = clock_ns(libc::CLOCK_MONOTONIC);
    (rt - (m1 + (m2 - m1) / 2)) as i64
}

/// One drain pass: copy out up to MAX_ITEMS_PER_PASS items in chunks of CHUNK_BYTES. Each
/// chunk is a mark (its ring position), its items, a flush, and only then the commit that
/// gives its space back: a loader killed before the commit leaves the chunk in the ring.
pub fn drain_pass<W: Write>(ring: &mut Ring, out: &mut Output<W>, item: &mut Vec<u8>) -> io::Result<Pass> {
    let offset = mono_to_epoch_offset();
    let mut pass = Pass::default();
    while pass.items < MAX_ITEMS_PER_PASS && ring.has_data() {
        out.write_mark(ring.position())?;
        let mut bytes = 0;
        let mut more = true;
        while pass.items < MAX_ITEMS_PER_PASS && bytes < CHUNK_BYTES {
            if !ring.next_into(item) {
                more = false;
                break;
            }
            bytes += item.len();
            out.emit_buf(item, offset)?;
            pass.items += 1;
        }
        pass.bytes += bytes;
        out.flush()?;
        ring.commit();
        if !more {
            break;
        }
    }
    out.loader[PC_LCNT_DRAINS] += 1;
    out.flush()?;
    Ok(pass)
}

/// What one drain pass read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pass {
    pub items: usize,
    pub bytes: usize,
}

impl Pass {
    /// It stopped at the item bound with records still waiting: run the next one at once.
    pub fn cut_short(&self) -> bool {
        self.items >= MAX_ITEMS_PER_PASS
    }
}

/// At the start of a loader that took over a ring (crate::pins): the agent received the first
/// `received` items read from ring position `mark` whole from the loader before; when the ring
/// still stands there (that loader died before its commit), they are stepped over, so nothing
/// is delivered twice. Returns how many were skipped.
pub fn skip_received(ring: &mut Ring, mark: u64, received: u64) -> u64 {
    if ring.committed() != mark || ring.position() != mark {
        return 0;
    }
    let mut item = Vec::with_capacity(PC_DATA_HDR_SIZE + PC_DATA_MAX);
    let mut skipped = 0;
    while skipped < received && ring.next_into(&mut item) {
        // The loader before wrote a frame only for a well-formed item.
        if prepare_item(&mut item, 0).is_some() {
            skipped += 1;
        }
    }
    ring.commit();
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(start: u64, end: u64) -> Vec<u8> {
        let r = PcRequest { r#type: PC_REC_REQUEST, start_ns: start, end_ns: end, pid: 7, ..Default::default() };
        // SAFETY: PcRequest is repr(C) with integer fields only and no padding.
        unsafe { std::slice::from_raw_parts(&r as *const _ as *const u8, PC_REQUEST_SIZE) }.to_vec()
    }

    fn data(len: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; PC_DATA_HDR_SIZE];
        v[0..4].copy_from_slice(&PC_REC_DATA.to_le_bytes());
        v[4] = PC_DIR_RESPONSE;
        v[6..8].copy_from_slice(&len.to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Splits a byte stream back into frames.
    fn frames(mut s: &[u8]) -> Vec<Vec<u8>> {
        let mut out = vec![];
        while !s.is_empty() {
            let n = u32::from_le_bytes(s[..4].try_into().unwrap()) as usize;
            out.push(s[4..4 + n].to_vec());
            s = &s[4 + n..];
        }
        out
    }

    #[test]
    fn frame_is_length_prefixed_concatenation() {
        let mut o = Output::new(Vec::new());
        o.write_frame(&[b"ab", b"cde"]).unwrap();
        o.write_frame(&[]).unwrap();
        assert_eq!(o.loader[PC_LCNT_RECORDS_OUT], 2);
        assert_eq!(o.into_inner(), b"\x05\0\0\0abcde\0\0\0\0");
    }

    #[test]
    fn request_times_become_epoch() {
        let mut o = Output::new(Vec::new());
        o.emit_item(&request(1_000, 2_000), 1_700_000_000_000_000_000).unwrap();
        let f = frames(&o.into_inner());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].len(), PC_REQUEST_SIZE);
        assert_eq!(read_u64(&f[0], REQ_START_NS_OFF), Some(1_700_000_000_000_001_000));
        assert_eq!(read_u64(&f[0], REQ_END_NS_OFF), Some(1_700_000_000_000_002_000));
        assert_eq!(read_u32(&f[0], 8), Some(7)); // untouched fields pass through
    }

    #[test]
    fn unset_time_stays_zero() {
        let mut b = request(0, 5);
        prepare_item(&mut b, 10).unwrap();
        assert_eq!(read_u64(&b, REQ_START_NS_OFF), Some(0));
        assert_eq!(read_u64(&b, REQ_END_NS_OFF), Some(15));
    }

    #[test]
    fn data_frame_trimmed_to_len() {
        let mut o = Output::new(Vec::new());
        o.emit_item(&data(3, b"xyzPADDING"), 99).unwrap(); // fixed-size slot: trim
        o.emit_item(&data(8, b"abc"), 99).unwrap(); // item shorter than len: trust item
        let f = frames(&o.into_inner());
        assert_eq!(f[0].len(), PC_DATA_HDR_SIZE + 3);
        assert_eq!(&f[0][PC_DATA_HDR_SIZE..], b"xyz");
        assert_eq!(f[1].len(), PC_DATA_HDR_SIZE + 3);
    }

    #[test]
    fn malformed_items_are_counted_and_skipped() {
        let mut o = Output::new(Vec::new());
        o.emit_item(&request(1, 2)[..PC_REQUEST_SIZE - 1], 0).unwrap(); // short request
        o.emit_item(&[1, 0], 0).unwrap(); // no room for the type
        o.emit_item(&99u32.to_le_bytes(), 0).unwrap(); // unknown type
        o.emit_item(&data(4097, &[]), 0).unwrap(); // len beyond PC_DATA_MAX
        o.emit_item(&data(0, &[])[..PC_DATA_HDR_SIZE - 1], 0).unwrap(); // short data header
        assert_eq!(o.loader[PC_LCNT_MALFORMED], 5);
        assert_eq!(o.loader[PC_LCNT_RECORDS_OUT], 0);
        assert!(o.into_inner().is_empty());
    }

    #[test]
    fn offset_is_close_to_realtime_minus_monotonic() {
        let off = mono_to_epoch_offset() as i128;
        let direct = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC);
        assert!((off - direct).abs() < 50_000_000, "offset {off} vs {direct}");
        assert!(off > 1_500_000_000_000_000_000); // after 2017: it's an epoch offset
    }
}
