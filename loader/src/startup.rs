//! From a Config to a loaded, filtered and attached BPF object: the kernel checks, the load,
//! the filters and listening servers, the attach, then the loader-info record. Every failure
//! is a Fatal with the exit code that says why.

use std::io::Write;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::{Btf, Ebpf, EbpfLoader};

use crate::attach;
use crate::cli::Config;
use crate::drain::Output;
use crate::errors::{classify, error_chain_line};
use crate::exit::*;
use crate::features::{self, Features};
use crate::filters::{FilterError, Filters};
use crate::idle_flush::IdleFlush;
use crate::kernel::{bump_memlock, kernel_version, uname_release, KERNEL_BTF};
use crate::loader_info::{loader_info_json, write_loader_info};
use crate::reclaim::Reclaim;
use crate::seed;
use crate::stats::StatsMaps;

/// Everything that lives while the loader runs.
pub struct Running {
    pub ebpf: Ebpf,
    pub filters: Filters,
    pub ring: RingBuf<MapData>,
    pub stats: StatsMaps,
    pub idle_flush: IdleFlush,
    pub reclaim: Reclaim,
}

pub fn start<W: Write>(cfg: &Config, out: &mut Output<W>) -> Result<Running, Fatal> {
    let release = uname_release();
    match kernel_version(&release) {
        Some(v) if v < (5, 8) => {
            return Err(fatal(
                PC_EXIT_OLD_KERNEL,
                format!("kernel {release} is older than 5.8 (BPF ring buffer needed)"),
            ))
        }
        None => log::warn!("cannot parse kernel release '{release}', trying anyway"),
        _ => {}
    }
    if !std::path::Path::new(KERNEL_BTF).exists() {
        return Err(fatal(
            PC_EXIT_NO_BTF,
            format!("{KERNEL_BTF} is missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y"),
        ));
    }
    let elf = std::fs::read(&cfg.bpf_object)
        .map_err(|e| fatal(PC_EXIT_OBJECT, format!("cannot read BPF object {}: {e}", cfg.bpf_object)))?;
    let sections = attach::program_sections(&elf)
        .map_err(|e| fatal(PC_EXIT_OBJECT, format!("{} is not a BPF ELF object: {e}", cfg.bpf_object)))?;
    let btf = Btf::from_sys_fs()
        .map_err(|e| fatal(PC_EXIT_NO_BTF, format!("cannot parse {KERNEL_BTF}: {}", error_chain_line(&e))))?;
    bump_memlock();
    let features = Features::probe(&btf).downgraded(&cfg.downgrade);
    if !features.ringbuf {
        return Err(fatal(
            PC_EXIT_OLD_KERNEL,
            format!("kernel {release} lacks the BPF ring buffer (bpf_ringbuf_output, Linux 5.8)"),
        ));
    }
    let mut variants = features.variants();
    let args_at_enter = u8::from(variants.syscall_args == "enter_map");

    let wakeup_bytes = cfg.ringbuf_bytes as u64 / 4;
    // Past half full the loader is behind: the kernel stops capturing payloads first.
    let shed_capture_bytes = cfg.ringbuf_bytes as u64 / 2;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .map_max_entries("events", cfg.ringbuf_bytes)
        .map_max_entries("conns", cfg.conn_table_entries)
        .override_global("capture_req_bytes", &cfg.capture_req_bytes, true)
        .override_global("capture_resp_bytes", &cfg.capture_resp_bytes, true)
        .override_global("wakeup_bytes", &wakeup_bytes, true)
        .override_global("shed_capture_bytes", &shed_capture_bytes, true)
        .override_global("args_at_enter", &args_at_enter, true)
        .load(&elf)
        .map_err(|e| classify(&format!("loading {}", cfg.bpf_object), &e))?;

    // Filters go in before any program is attached, so the first accept already sees them.
    let me = std::process::id();
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() } as u32;
    // A parent of 1 means we were orphaned (or daemonized): nothing of ours to hide there.
    let always_ignored = if parent > 1 { vec![me, parent] } else { vec![me] };
    let mut filters = Filters::new(&mut ebpf, always_ignored).map_err(|e| map_fatal("filter maps", &e))?;
    for set in &cfg.filters {
        filters.apply(set).map_err(|e| map_fatal("applying filter flags", &e))?;
    }
    // Servers that were listening before we started (or before a restart): their connections
    // are adopted at their next request, not missed or taken for outbound ones.
    let listening = seed::scan();
    seed::seed(&mut ebpf, &listening).map_err(|e| fatal(PC_EXIT_LOAD, e))?;
    log::debug!("seeded {} listening ports of {} processes", listening.ports.len(), listening.pids.len());
    let ring = ebpf
        .take_map("events")
        .ok_or_else(|| fatal(PC_EXIT_LOAD, "BPF object has no map 'events'"))
        .and_then(|m| RingBuf::try_from(m).map_err(|e| classify("ring buffer 'events'", &e)))?;
    let counters = ebpf
        .take_map("counters")
        .ok_or_else(|| fatal(PC_EXIT_LOAD, "BPF object has no map 'counters'"))
        .and_then(|m| PerCpuArray::try_from(m).map_err(|e| classify("map 'counters'", &e)))?;

    let programs = attach::attach_all(&mut ebpf, &sections, &btf, |name| features::plan_for(name, &variants))
        .map_err(|e| classify("attaching", &e))?;
    if programs.is_empty() {
        return Err(fatal(PC_EXIT_LOAD, format!("{} has no program this loader can attach", cfg.bpf_object)));
    }
    let idle_flush = IdleFlush::new(&mut ebpf, &programs).map_err(|e| fatal(PC_EXIT_LOAD, e))?;
    variants.idle_flush = idle_flush.variant();
    let reclaim = Reclaim::new(&ebpf).map_err(|e| fatal(PC_EXIT_LOAD, e))?;
    let json = loader_info_json(cfg, &programs, &release, &variants, me);
    write_loader_info(out, &json).map_err(|e| output_fatal(&e))?;
    log::info!(
        "attached {} programs on kernel {release} (variants: syscall args {}, idle flush {}, rss {}; capture {}/{} bytes, ring buffer {} bytes, pid {me}): {}",
        programs.len(),
        variants.syscall_args,
        variants.idle_flush,
        variants.rss,
        cfg.capture_req_bytes,
        cfg.capture_resp_bytes,
        cfg.ringbuf_bytes,
        programs.join(",")
    );
    let unattributed = ebpf
        .take_map("cpu_unattributed")
        .ok_or_else(|| fatal(PC_EXIT_LOAD, "BPF object has no map 'cpu_unattributed'"))
        .and_then(|m| aya::maps::HashMap::try_from(m).map_err(|e| classify("map 'cpu_unattributed'", &e)))?;
    Ok(Running { ebpf, filters, ring, stats: StatsMaps { counters, unattributed }, idle_flush, reclaim })
}

fn map_fatal(what: &str, e: &FilterError) -> Fatal {
    match e {
        FilterError::MissingMap(_) => fatal(PC_EXIT_LOAD, format!("{what}: {e}")),
        _ => classify(what, e),
    }
}
