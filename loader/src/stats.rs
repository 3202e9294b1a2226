//! Stats reports: the kernel counters summed over CPUs plus the loader's own, then the CPU each
//! serving process used outside any request.

use std::io::{self, Write};

use aya::maps::{HashMap, MapData, PerCpuArray};

use crate::drain::Output;
use crate::record::*;

/// The kernel maps a stats report reads.
pub struct StatsMaps {
    pub counters: PerCpuArray<MapData, u64>,
    pub unattributed: HashMap<MapData, u32, u64>,
}

/// Writes a PC_REC_STATS frame, then one PC_REC_PROCESS_CPU frame per process with CPU charged
/// to no request.
pub fn write_stats<W: Write>(maps: &StatsMaps, out: &mut Output<W>) -> io::Result<()> {
    let StatsMaps { counters, unattributed } = maps;
    let mut s = PcStats { r#type: PC_REC_STATS, n_kernel: PC_CNT_MAX as u32, ..Default::default() };
    for (i, slot) in s.kernel.iter_mut().enumerate() {
        match counters.get(&(i as u32), 0) {
            Ok(per_cpu) => *slot = per_cpu.iter().sum(),
            Err(e) => log::debug!("counter {i}: {e}"),
        }
    }
    s.loader = out.loader;
    out.write_frame(&[&s.to_bytes()])?;
    for (pid, ns) in unattributed.iter().filter_map(Result::ok) {
        out.write_frame(&[&PcProcessCpu { r#type: PC_REC_PROCESS_CPU, pid, unattributed_ns: ns }.to_bytes()])?;
    }
    out.flush()
}
