//! From a Config to a loaded, filtered and attached BPF object: the kernel checks, the load,
//! the filters and listening servers, the attach, then the loader-info record. Every failure
//! is a Fatal with the exit code that says why.

use std::io::Write;
use std::os::fd::AsFd;

use aya::maps::{Map, PerCpuArray};
use aya::programs::links::PinnedLink;
use aya::{Btf, Ebpf, EbpfLoader};

use crate::attach;
use crate::cli::Config;
use crate::drain::{skip_received, Output};
use crate::errors::{classify, error_chain_line};
use crate::exit::*;
use crate::features::{self, Features, Variants};
use crate::filters::{FilterError, FilterSet, Filters};
use crate::idle_flush::IdleFlush;
use crate::kernel::{bump_memlock, kernel_version, uname_release, KERNEL_BTF};
use crate::loader_info::{loader_info_json, write_loader_info, PinsInfo};
use crate::maps::Maps;
use crate::pins::{self, PinPlan, StateDir};
use crate::reclaim::Reclaim;
use crate::ring::Ring;
use crate::seed;
use crate::stats::StatsMaps;

/// Everything that lives while the loader runs.
pub struct Running {
    /// The loaded object, kept only when its links are not pinned: dropping it detaches.
    pub ebpf: Option<Ebpf>,
    /// Pinned links (they stay attached after the loader, until their pins go).
    pub links: Vec<PinnedLink>,
    /// The pinned state, removed on a clean stop.
    pub pins: Option<StateDir>,
    pub filters: Filters,
    pub ring: Ring,
    pub stats: StatsMaps,
    pub idle_flush: IdleFlush,
    pub reclaim: Reclaim,
}

impl Running {
    /// A clean stop: the pins go (detaching the programs once this process closes its fds).
    pub fn unpin(&self) {
        if let Some(dir) = &self.pins {
            dir.remove();
        }
    }
}

/// What start() builds on, from a fresh load (programs not attached yet) or from pins.
struct Loaded {
    ebpf: Option<Ebpf>,
    /// For a fresh load: the program sections and the kernel's BTF, to attach with.
    to_attach: Option<(std::collections::HashMap<String, String>, Btf)>,
    links: Vec<PinnedLink>,
    maps: Maps,
    programs: Vec<String>,
    variants: Variants,
    reused: bool,
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
    bump_memlock();
    let mut plan = pins::plan(cfg, &elf, !cfg.pin_root.is_empty() && aya::features().bpf_perf_link());
    let mut loaded = None;
    let mut replan = false;
    if let PinPlan::Reuse(dir, variants) = &plan {
        match reuse(dir, *variants) {
            Ok(l) => loaded = Some(l),
            Err(e) => {
                log::warn!("cannot take over the pins in {} ({e}): loading afresh", dir.path.display());
                dir.remove();
                replan = true;
            }
        }
    }
    if replan {
        drop(std::mem::replace(&mut plan, PinPlan::Off { reason: None })); // lets go of the lock first
        plan = pins::plan(cfg, &elf, true);
    }
    let (pins_state, reason) = match &plan {
        PinPlan::Off { reason } => ("off", reason.clone()),
        PinPlan::Fresh(_) => ("fresh", None),
        PinPlan::Reuse(..) => ("reused", None),
    };
    if let PinPlan::Fresh(dir) = &plan {
        // A fresh state is loaded and pinned by a child process, and taken over from its pins
        // like a restart's: the load's heap (the kernel's BTF parsed, aya's relocations, about
        // 25 MB at its peak) goes with the child instead of staying in this process's peak RSS.
        match load_in_child(cfg, &elf, &release, dir) {
            Ok(variants) => match reuse(dir, variants) {
                Ok(l) => loaded = Some(l),
                Err(e) => {
                    dir.remove();
                    return Err(fatal(
                        PC_EXIT_LOAD,
                        format!("opening the pins just made in {}: {e}", dir.path.display()),
                    ));
                }
            },
            Err(f) => {
                dir.remove();
                return Err(f);
            }
        }
    }
    if let Some(r) = &reason {
        log::warn!("not pinning ({r}): a loader restart reloads, and what happens meanwhile is not captured");
    }
    let pin_dir = match plan {
        PinPlan::Off { .. } => None,
        PinPlan::Fresh(d) | PinPlan::Reuse(d, _) => Some(d),
    };
    let result = match loaded {
        Some(l) => Ok(l),
        None => load(cfg, &elf, &release, pin_dir.as_ref()),
    };
    drop(elf);
    let result = result.and_then(|l| finish(cfg, out, l, &release, pin_dir, pins_state, reason));
    #[cfg(target_env = "gnu")]
    // The load's heap (the kernel's BTF parsed, the object, relocations) is free now: give it
    // back, or it stays in the loader's RSS for as long as it runs.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
    result
}

/// Filters, attach, maps and the loader-info record. A failure removes the pins.
fn finish<W: Write>(
    cfg: &Config,
    out: &mut Output<W>,
    mut loaded: Loaded,
    release: &str,
    pin_dir: Option<StateDir>,
    pins_state: &'static str,
    reason: Option<String>,
) -> Result<Running, Fatal> {
    let r = attach_and_open(cfg, out, &mut loaded, release, &pin_dir, pins_state, reason);
    match r {
        Ok((filters, ring, stats, idle_flush, reclaim)) => Ok(Running {
            ebpf: loaded.ebpf,
            links: loaded.links,
            pins: pin_dir,
            filters,
            ring,
            stats,
            idle_flush,
            reclaim,
        }),
        Err(f) => {
            if let Some(dir) = &pin_dir {
                dir.remove();
            }
            Err(f)
        }
    }
}

type Opened = (Filters, Ring, StatsMaps, IdleFlush, Reclaim);

fn attach_and_open<W: Write>(
    cfg: &Config,
    out: &mut Output<W>,
    loaded: &mut Loaded,
    release: &str,
    pin_dir: &Option<StateDir>,
    pins_state: &'static str,
    reason: Option<String>,
) -> Result<Opened, Fatal> {
    let me = std::process::id();
    let mut variants = loaded.variants;
    let maps = &mut loaded.maps;

    // Filters go in before any program is attached, so the first accept already sees them.
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() } as u32;
    // A parent of 1 means we were orphaned (or daemonized): nothing of ours to hide there.
    let always_ignored = if parent > 1 { vec![me, parent] } else { vec![me] };
    let mut filters = Filters::new(maps, always_ignored, loaded.reused).map_err(|e| map_fatal("filter maps", &e))?;
    if loaded.reused {
        // The maps hold the last loader's filters: every one is set again, from the flags.
        for off in [
            FilterSet::Pids(vec![]),
            FilterSet::Ports(vec![]),
            FilterSet::Cgroups(vec![]),
            FilterSet::Comms(vec![]),
            FilterSet::IgnorePids(vec![]),
        ] {
            let set = cfg
                .filters
                .iter()
                .rev()
                .find(|s| std::mem::discriminant(*s) == std::mem::discriminant(&off))
                .unwrap_or(&off);
            filters.apply(set).map_err(|e| map_fatal("applying filter flags", &e))?;
        }
    } else {
        for set in &cfg.filters {
            filters.apply(set).map_err(|e| map_fatal("applying filter flags", &e))?;
        }
    }
    if let (Some(ebpf), Some((sections, btf))) = (loaded.ebpf.as_mut(), loaded.to_attach.take()) {
        let (programs, links) =
            attach::attach_all(ebpf, &sections, &btf, |name| features::plan_for(name, &variants), pin_dir.is_some())
                .map_err(|e| classify("attaching", &e))?;
        if programs.is_empty() {
            return Err(fatal(PC_EXIT_LOAD, format!("{} has no program this loader can attach", cfg.bpf_object)));
        }
        if let Some(dir) = pin_dir {
            for (name, link) in links {
                let pinned =
                    link.pin(dir.links().join(&name)).map_err(|e| classify(&format!("pinning link {name}"), &e))?;
                loaded.links.push(pinned);
            }
            // Every link is pinned: the programs stay attached without the object.
            loaded.ebpf = None;
        }
        loaded.programs = programs;
    }
    rss_note("attached");
    let maps = &mut loaded.maps;
    let (mut ring, state_id) = match maps.take("events") {
        Some(Map::RingBuf(data)) => {
            let info = data.info().map_err(|e| classify("ring buffer 'events'", &e))?;
            let fd = data
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| fatal(PC_EXIT_LOAD, format!("ring buffer 'events': {e}")))?;
            let ring = Ring::new(fd, info.max_entries())
                .map_err(|e| fatal(PC_EXIT_LOAD, format!("mapping ring buffer 'events': {e}")))?;
            (ring, info.id())
        }
        _ => return Err(fatal(PC_EXIT_LOAD, "BPF object has no ring buffer 'events'")),
    };
    let counters = maps
        .take("counters")
        .ok_or_else(|| fatal(PC_EXIT_LOAD, "BPF object has no map 'counters'"))
        .and_then(|m| PerCpuArray::try_from(m).map_err(|e| classify("map 'counters'", &e)))?;
    let unattributed = maps
        .take("cpu_unattributed")
        .ok_or_else(|| fatal(PC_EXIT_LOAD, "BPF object has no map 'cpu_unattributed'"))
        .and_then(|m| aya::maps::HashMap::try_from(m).map_err(|e| classify("map 'cpu_unattributed'", &e)))?;
    let idle_flush = IdleFlush::new(maps, &loaded.programs).map_err(|e| fatal(PC_EXIT_LOAD, e))?;
    variants.idle_flush = idle_flush.variant();
    let reclaim = Reclaim::new(maps).map_err(|e| fatal(PC_EXIT_LOAD, e))?;
    if let (Some(dir), false) = (pin_dir, loaded.reused) {
        dir.mark_complete(&variants).map_err(|e| fatal(PC_EXIT_LOAD, format!("pinning: {e}")))?;
    }
    rss_note("started");
    let mut skipped = 0;
    if let (Some((mark, received)), true) = (cfg.resume, loaded.reused) {
        skipped = skip_received(&mut ring, mark, received);
    }
    let pins_info = PinsInfo {
        state: pins_state,
        dir: pin_dir.as_ref().map(|d| d.path.to_string_lossy().into_owned()),
        reason: reason.clone(),
        state_id,
        resumed_at: ring.position(),
        skipped,
    };
    let programs = &loaded.programs;
    let json = loader_info_json(cfg, programs, release, &variants, me, &pins_info);
    write_loader_info(out, &json).map_err(|e| output_fatal(&e))?;
    log::info!(
        "attached {} programs on kernel {release} (variants: syscall args {}, idle flush {}, rss {}; capture {}/{} bytes, ring buffer {} bytes, pid {me}; pins {pins_state}{}): {}",
        programs.len(),
        variants.syscall_args,
        variants.idle_flush,
        variants.rss,
        cfg.capture_req_bytes,
        cfg.capture_resp_bytes,
        cfg.ringbuf_bytes,
        if pins_state == "reused" { format!(", ring at {}, {skipped} records already sent skipped", ring.position()) } else { String::new() },
        programs.join(",")
    );
    Ok((filters, ring, StatsMaps { counters, unattributed }, idle_flush, reclaim))
}

/// Loads, filters, attaches and pins into `dir` in a forked child, which exits then (the pins
/// keep everything); returns the variants it chose. A child that fails has written its one
/// stderr line: the Fatal returned then has no message, only its exit code.
fn load_in_child(cfg: &Config, elf: &[u8], release: &str, dir: &StateDir) -> Result<Variants, Fatal> {
    // SAFETY: getpid/getppid cannot fail.
    let (me, agent) = unsafe { (libc::getpid() as u32, libc::getppid() as u32) };
    // SAFETY: no other thread runs yet (the runtime and the stdin reader come later), so the
    // child may go on with Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(fatal(PC_EXIT_OTHER, format!("fork: {}", std::io::Error::last_os_error()))),
        0 => {
            // The child dies with the loader: a loader killed while its child loads leaves an
            // incomplete state (no ok- marker), which the next loader removes.
            // SAFETY: plain prctl and getppid calls.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                if libc::getppid() as u32 != me {
                    libc::_exit(PC_EXIT_OTHER);
                }
            }
            // SAFETY: as above.
            let child = unsafe { libc::getpid() } as u32;
            let mut ignored = vec![me, child];
            if agent > 1 {
                ignored.push(agent);
            }
            match load(cfg, elf, release, Some(dir)).and_then(|mut l| attach_and_pin(cfg, &mut l, dir, ignored)) {
                Ok(v) => {
                    rss_note("loaded in a child");
                    // SAFETY: ends the child without running anything of the parent's.
                    unsafe { libc::_exit(if dir.mark_complete(&v).is_ok() { 0 } else { PC_EXIT_LOAD }) }
                }
                Err(f) => exit_with(f),
            }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child, with a valid status pointer.
            let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
            let code = if rc == pid && libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { PC_EXIT_OTHER };
            if code != 0 {
                return Err(fatal(code, ""));
            }
            dir.variants().ok_or_else(|| {
                fatal(PC_EXIT_LOAD, format!("{}: the loading child left no complete state", dir.path.display()))
            })
        }
    }
}

/// In the child of load_in_child: filters, attach, pin every link. Returns the variants.
fn attach_and_pin(cfg: &Config, loaded: &mut Loaded, dir: &StateDir, ignored: Vec<u32>) -> Result<Variants, Fatal> {
    let mut filters = Filters::new(&mut loaded.maps, ignored, false).map_err(|e| map_fatal("filter maps", &e))?;
    for set in &cfg.filters {
        filters.apply(set).map_err(|e| map_fatal("applying filter flags", &e))?;
    }
    let mut variants = loaded.variants;
    let (Some(ebpf), Some((sections, btf))) = (loaded.ebpf.as_mut(), loaded.to_attach.take()) else {
        return Err(fatal(PC_EXIT_LOAD, "nothing to attach"));
    };
    let (programs, links) = attach::attach_all(ebpf, &sections, &btf, |name| features::plan_for(name, &variants), true)
        .map_err(|e| classify("attaching", &e))?;
    if programs.is_empty() {
        return Err(fatal(PC_EXIT_LOAD, format!("{} has no program this loader can attach", cfg.bpf_object)));
    }
    for (name, link) in links {
        // Pinned, then the fd closes as the child exits: the pin holds the link.
        link.pin(dir.links().join(&name)).map_err(|e| classify(&format!("pinning link {name}"), &e))?;
    }
    let has = |p: &str| programs.iter().any(|n| n == p);
    variants.idle_flush = if has(features::IDLE_FLUSH_WALK) {
        "kernel_walk"
    } else if has(features::IDLE_FLUSH_LISTED) {
        "loader_scan"
    } else {
        "off"
    };
    Ok(variants)
}

/// Takes over a complete pinned state: its maps; its programs stay attached by their pins.
fn reuse(dir: &StateDir, variants: Variants) -> Result<Loaded, String> {
    let maps = Maps::from_pins(&dir.maps())?;
    let programs = dir.programs().map_err(|e| format!("{}: {e}", dir.links().display()))?;
    if programs.is_empty() {
        return Err("no pinned links".into());
    }
    Ok(Loaded { ebpf: None, to_attach: None, links: vec![], maps, programs, variants, reused: true })
}

/// Loads and attaches the object; with `pins`, pins every map and link there.
fn load(cfg: &Config, elf: &[u8], release: &str, pins: Option<&StateDir>) -> Result<Loaded, Fatal> {
    let sections = attach::program_sections(elf)
        .map_err(|e| fatal(PC_EXIT_OBJECT, format!("{} is not a BPF ELF object: {e}", cfg.bpf_object)))?;
    let btf = Btf::from_sys_fs()
        .map_err(|e| fatal(PC_EXIT_NO_BTF, format!("cannot parse {KERNEL_BTF}: {}", error_chain_line(&e))))?;
    rss_note("kernel BTF parsed");
    let features = Features::probe(&btf).downgraded(&cfg.downgrade);
    if !features.ringbuf {
        return Err(fatal(
            PC_EXIT_OLD_KERNEL,
            format!("kernel {release} lacks the BPF ring buffer (bpf_ringbuf_output, Linux 5.8)"),
        ));
    }
    let variants = features.variants();
    let args_at_enter = u8::from(variants.syscall_args == "enter_map");

    let wakeup_bytes = cfg.ringbuf_bytes as u64 / 4;
    // Past half full the loader is behind: the kernel stops capturing payloads first.
    let shed_capture_bytes = cfg.ringbuf_bytes as u64 / 2;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .map_max_entries("events", cfg.ringbuf_bytes)
        .map_max_entries("conns", cfg.conn_table_entries)
        .map_max_entries("flush_set", flush_set_entries(cfg.conn_table_entries))
        .override_global("capture_req_bytes", &cfg.capture_req_bytes, true)
        .override_global("capture_resp_bytes", &cfg.capture_resp_bytes, true)
        .override_global("wakeup_bytes", &wakeup_bytes, true)
        .override_global("shed_capture_bytes", &shed_capture_bytes, true)
        .override_global("args_at_enter", &args_at_enter, true)
        .load(elf)
        .map_err(|e| classify(&format!("loading {}", cfg.bpf_object), &e))?;
    rss_note("object loaded");
    let mut maps = Maps::from_ebpf(&mut ebpf);
    if let Some(dir) = pins {
        // Internal maps (.bss, .data, .rodata) stay with the programs: bpffs refuses names
        // beginning with a dot, and the loader never opens them.
        for (name, map) in maps.iter().filter(|(n, _)| !n.starts_with('.')) {
            map.pin(dir.maps().join(name)).map_err(|e| classify(&format!("pinning map {name}"), &e))?;
        }
    }
    // Servers that were listening before we started (or before a restart): their connections
    // are adopted at their next request, not missed or taken for outbound ones. (The filters
    // are applied by the caller before any program is attached, but the seeding needs none.)
    let listening = seed::scan();
    seed::seed(&mut maps, &listening).map_err(|e| fatal(PC_EXIT_LOAD, e))?;
    log::debug!("seeded {} listening ports of {} processes", listening.ports.len(), listening.pids.len());
    Ok(Loaded {
        ebpf: Some(ebpf),
        to_attach: Some((sections, btf)),
        links: vec![],
        maps,
        programs: vec![],
        variants,
        reused: false,
    })
}

/// Entries of the kernel's flush_set (bpf/maps.bpf.h): the connections the idle flush visits,
/// those whose response started since their last flush. An eighth of the connection table;
/// beyond, the kernel falls back to walking the whole table.
pub fn flush_set_entries(conn_table_entries: u32) -> u32 {
    (conn_table_entries / 8).max(16)
}

/// VmRSS and VmHWM of this process (debug log of what the start costs).
pub fn rss_note(when: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default()
    };
    log::debug!("{when}: VmRSS {}, VmHWM {}", field("VmRSS:"), field("VmHWM:"));
}

fn map_fatal(what: &str, e: &FilterError) -> Fatal {
    match e {
        FilterError::MissingMap(_) => fatal(PC_EXIT_LOAD, format!("{what}: {e}")),
        _ => classify(what, e),
    }
}
