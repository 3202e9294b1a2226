//! The BPF ring buffer read directly (no aya RingBuf), for two reasons:
//!
//! - The consumer position moves only when the loader says so (`commit`), after the records
//!   read have been written to stdout. A loader killed in between leaves them in the ring, and
//!   when the ring outlives it (pinned, crate::pins) the next loader reads them again; the
//!   agent says how many of them it had received whole (`--resume`), and those are skipped
//!   (crate::drain). aya's RingBuf moves the position as each record is dropped.
//! - The data area is mapped once. The kernel can map it twice in a row so that a record that
//!   wraps around the end reads as one slice; every page of a ring-buffer mapping is in the
//!   process's page tables from mmap on, so that second copy alone was 16 MB of the loader's
//!   RSS with the default 16 MB ring. Here a record that wraps is copied in two pieces (every
//!   record is copied out anyway).
//!
//! Layout (kernel/bpf/ringbuf.c): page 0 holds consumer_pos (the only page user space may
//! write), page 1 producer_pos, then the data pages. Each record starts with an 8-byte header
//! {u32 len | BUSY | DISCARD, u32 page offset}; records are 8-byte aligned.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HDR_SIZE: u64 = 8;

pub struct Ring {
    fd: OwnedFd,
    consumer: *mut u8,
    producer: *mut u8,
    page: usize,
    size: u64,
    /// Position of the next record to read (not yet committed when ahead of consumer_pos).
    pos: u64,
}

// SAFETY: the mappings are owned by this value and only used through &mut self.
unsafe impl Send for Ring {}

impl Ring {
    /// Maps the ring buffer behind `fd`, whose data area is `size` bytes (its max_entries).
    pub fn new(fd: OwnedFd, size: u32) -> io::Result<Ring> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        if !size.is_power_of_two() || (size as usize) < page {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("ring buffer size {size}")));
        }
        let map = |len: usize, prot: libc::c_int, off: usize| {
            // SAFETY: a fresh shared mapping of the map's fd; the kernel checks offset and size.
            let p = unsafe {
                libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), off as libc::off_t)
            };
            if p == libc::MAP_FAILED {
                Err(io::Error::last_os_error())
            } else {
                Ok(p as *mut u8)
            }
        };
        let consumer = map(page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = match map(page + size as usize, libc::PROT_READ, page) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: mapped just above with this length.
                unsafe { libc::munmap(consumer as *mut libc::c_void, page) };
                return Err(e);
            }
        };
        let mut ring = Ring { fd, consumer, producer, page, size: size as u64, pos: 0 };
        ring.pos = ring.committed();
        Ok(ring)
    }

    /// The fd, for epoll (the kernel wakes it as records are submitted with a wakeup).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The consumer position the kernel knows (what was committed, by us or an earlier loader).
    pub fn committed(&self) -> u64 {
        // SAFETY: consumer_pos is the first 8 bytes of the consumer page; the kernel reads it.
        unsafe { (*(self.consumer as *const AtomicU64)).load(Ordering::Acquire) }
    }

    /// Where the next record would be read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn producer_pos(&self) -> u64 {
        // SAFETY: producer_pos is the first 8 bytes of the producer page, written by the kernel.
        unsafe { (*(self.producer as *const AtomicU64)).load(Ordering::Acquire) }
    }

    /// Is there anything past the read position (committed or not, maybe still busy)?
    pub fn has_data(&self) -> bool {
        self.producer_pos() > self.pos
    }

    fn data(&self) -> *const u8 {
        // SAFETY: the data area follows the producer page within the mapping.
        unsafe { self.producer.add(self.page) }
    }

    /// Copies the next submitted record into `out` (cleared first) and returns true; false when
    /// nothing is ready (none, or the next is still being written). Discarded records are
    /// stepped over.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> bool {
        let mask = self.size - 1;
        loop {
            if self.pos >= self.producer_pos() {
                return false;
            }
            // SAFETY: headers are 8-byte aligned inside the data area, which is `size` bytes.
            let hdr = unsafe { &*(self.data().add((self.pos & mask) as usize) as *const AtomicU32) };
            let word = hdr.load(Ordering::Acquire);
            if word & BUSY_BIT != 0 {
                return false;
            }
            let len = (word & !(BUSY_BIT | DISCARD_BIT)) as u64;
            let start = self.pos + HDR_SIZE;
            self.pos += (len + HDR_SIZE + 7) & !7;
            if word & DISCARD_BIT != 0 {
                continue;
            }
            out.clear();
            let off = (start & mask) as usize;
            let first = (len as usize).min(self.size as usize - off);
            // SAFETY: both pieces lie inside the data area; the kernel does not reuse this
            // space before consumer_pos moves past it.
            unsafe {
                out.extend_from_slice(std::slice::from_raw_parts(self.data().add(off), first));
                out.extend_from_slice(std::slice::from_raw_parts(self.data(), len as usize - first));
            }
            return true;
        }
    }

    /// Gives the space of every record read so far back to the kernel.
    pub fn commit(&mut self) {
        // SAFETY: consumer_pos is ours to write (the kernel maps that page writable).
        unsafe { (*(self.consumer as *const AtomicU64)).store(self.pos, Ordering::Release) };
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping what new() mapped, with the same lengths.
        unsafe {
            libc::munmap(self.consumer as *mut libc::c_void, self.page);
            libc::munmap(self.producer as *mut libc::c_void, self.page + self.size as usize);
        }
    }
}
