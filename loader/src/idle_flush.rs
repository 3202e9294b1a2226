//! Triggers the idle flush (bpf/idle_flush.bpf.c): requests on keep-alive connections that went
//! quiet after their response are reported without waiting for the next request.
//!
//! The trigger is a prctl() option no kernel defines (it fails with EINVAL, as intended), which
//! a syscall tracepoint program watches. Where the kernel can walk the connection map itself
//! (bpf_for_each_map_elem, 5.13) one call does it all; before, the loader reads the map's keys
//! and hands them over PC_FLUSH_LIST_MAX at a time: the kernel still decides which are idle and
//! emits them, so records come out the same way on every kernel.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use aya::maps::{Array, Map, MapData};

use crate::maps::Maps;

use crate::record::{PcConnKey, PcFlushList, PC_FLUSH_LISTED, PC_FLUSH_LIST_MAX, PC_FLUSH_PRCTL};

pub enum IdleFlush {
    Off,
    KernelWalk,
    LoaderScan { conns: OwnedFd, watched: OwnedFd, overflow: Array<MapData, u32>, list: Array<MapData, PcFlushList> },
}

impl IdleFlush {
    /// The flush that the attached programs support: `attached` names the programs attached.
    pub fn new(maps: &mut Maps, attached: &[String]) -> Result<IdleFlush, String> {
        if attached.iter().any(|p| p == crate::features::IDLE_FLUSH_WALK) {
            return Ok(IdleFlush::KernelWalk);
        }
        if !attached.iter().any(|p| p == crate::features::IDLE_FLUSH_LISTED) {
            return Ok(IdleFlush::Off);
        }
        let hash_fd = |name: &str| match maps.get(name) {
            Some(Map::LruHashMap(d)) | Some(Map::HashMap(d)) => {
                d.fd().as_fd().try_clone_to_owned().map_err(|e| format!("map '{name}': {e}"))
            }
            _ => Err(format!("BPF object has no hash map '{name}'")),
        };
        let conns = hash_fd("conns")?;
        let watched = hash_fd("flush_set")?;
        let array = |maps: &mut Maps, name: &str| maps.take(name).ok_or(format!("BPF object has no map '{name}'"));
        let overflow = Array::try_from(array(maps, "flush_overflow")?).map_err(|e| format!("map 'flush_overflow': {e}"))?;
        let list = Array::try_from(array(maps, "flush_list")?).map_err(|e| format!("map 'flush_list': {e}"))?;
        Ok(IdleFlush::LoaderScan { conns, watched, overflow, list })
    }

    /// The variant name reported in the loader-info record (crate::features::Variants).
    pub fn variant(&self) -> &'static str {
        match self {
            IdleFlush::Off => "off",
            IdleFlush::KernelWalk => "kernel_walk",
            IdleFlush::LoaderScan { .. } => "loader_scan",
        }
    }

    /// Reports requests whose connection has been quiet for `idle_ns`.
    pub fn trigger(&mut self, idle_ns: u64) {
        match self {
            IdleFlush::Off => {}
            IdleFlush::KernelWalk => prctl_flush(idle_ns, 0),
            IdleFlush::LoaderScan { conns, watched, overflow, list } => {
                // The connections whose response started (flush_set), or all of them once
                // one found that set full; cleared first, so that one failing meanwhile
                // sets it again for the next period.
                let full = overflow.get(&0, 0).unwrap_or(0) != 0;
                if full {
                    let _ = overflow.set(0, 0, 0);
                }
                let keys = map_keys(if full { conns } else { watched });
                // One call even with no connections: the program also finds the per-CPU
                // offsets RSS needs (bpf/idle_flush.bpf.c), from the first period on.
                let empty: [PcConnKey; 0] = [];
                let chunks: Vec<&[PcConnKey]> =
                    if keys.is_empty() { vec![&empty] } else { keys.chunks(PC_FLUSH_LIST_MAX).collect() };
                for chunk in chunks {
                    let mut value = PcFlushList { n: chunk.len() as u32, ..Default::default() };
                    value.keys[..chunk.len()].copy_from_slice(chunk);
                    if let Err(e) = list.set(0, value, 0) {
                        log::warn!("idle flush: writing flush_list: {e}");
                        return;
                    }
                    prctl_flush(idle_ns, PC_FLUSH_LISTED);
                }
            }
        }
    }
}

fn prctl_flush(idle_ns: u64, mode: libc::c_ulong) {
    // SAFETY: prctl with an unknown option only returns EINVAL; no memory is passed.
    unsafe { libc::prctl(PC_FLUSH_PRCTL, idle_ns as libc::c_ulong, mode, 0 as libc::c_ulong, 0 as libc::c_ulong) };
}

/// The BPF_MAP_GET_NEXT_KEY part of `union bpf_attr`.
#[repr(C)]
struct NextKeyAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    next_key: u64,
    flags: u64,
}

const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// Every key of a hash map whose keys are struct pc_conn_key. Entries the kernel adds or
/// removes meanwhile may be missed or seen twice: the next period catches them.
pub(crate) fn map_keys(map: &OwnedFd) -> Vec<PcConnKey> {
    let mut keys = Vec::new();
    let mut cur: Option<PcConnKey> = None;
    loop {
        let mut next = PcConnKey::default();
        let attr = NextKeyAttr {
            map_fd: map.as_raw_fd() as u32,
            _pad: 0,
            key: cur.as_ref().map_or(0, |k| k as *const PcConnKey as u64),
            next_key: &mut next as *mut PcConnKey as u64,
            flags: 0,
        };
        // SAFETY: key and next_key point at live PcConnKey values of the map's key size.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_NEXT_KEY,
                &attr as *const NextKeyAttr,
                std::mem::size_of::<NextKeyAttr>(),
            )
        };
        if rc != 0 {
            break; // ENOENT: done
        }
        keys.push(next);
        cur = Some(next);
        if keys.len() > 1 << 20 {
            break; // a map that keeps changing under us: enough for one period
        }
    }
    keys
}
