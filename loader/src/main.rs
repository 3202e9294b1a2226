//! perfcatch-loader: loads the PerfCatch BPF object, attaches every program, applies connection
//! filters (flags, then stdin commands) and streams ring-buffer records to stdout as frames.
//! See USAGE for the CLI; exit codes are the EXIT_* constants.

mod attach;
mod drain;
mod features;
mod filters;
mod idle_flush;
mod record;

use std::error::Error;
use std::fs::File;
use std::io::{self, BufRead, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::ProgramError;
use aya::{Btf, Ebpf, EbpfLoader};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::drain::Output;
use crate::features::{Features, Variants};
use crate::idle_flush::IdleFlush;
use crate::filters::{Command, FilterSet, Filters};
use crate::record::*;

const EXIT_OTHER: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_PRIVILEGE: i32 = 3;
const EXIT_NO_BTF: i32 = 4;
const EXIT_OLD_KERNEL: i32 = 5;
const EXIT_OBJECT: i32 = 6;
const EXIT_LOAD: i32 = 7;

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

const USAGE: &str = "usage: perfcatch-loader --bpf-object PATH [options]
  --capture-request-bytes N   request bytes captured per request (0..4096, default 4096)
  --capture-response-bytes N  response bytes captured per request (0..4096, default 512)
  --ringbuf-bytes N           ring buffer size, power of two, 4096..1073741824 (default 16777216)
  --drain-interval-ms N       ring buffer drain period (default 50)
  --stats-interval-ms N       stats record period (default 1000)
  --idle-flush-ms N           report a request once its connection has been quiet this long
                              after the response (default 500; 0 = only at the next request)
  --variants LIST             use the older kernels' variants although this kernel has newer
                              features: syscall_args=enter_map, idle_flush=loader_scan (tests,
                              and a way around a misbehaving newer path)
  --pids LIST                 only trace these process ids
  --ports LIST                only trace connections accepted on these local ports
  --cgroups LIST              only trace these cgroup v2 ids
  --comms LIST                only trace these process names (cut to 15 bytes)
  --ignore-pids LIST          never trace these process ids (the loader and its parent always are)
  --help                      this text
LIST is comma-separated. Stdin takes one command per line: pids|ports|cgroups|comms|ignore-pids LIST
(replaces that set; empty LIST switches the filter off) or `stats`. Stdin EOF stops the loader.
Stdout carries frames: u32 little-endian length, then one record (bpf/perfcatch.h).";

/// Everything the command line sets.
#[derive(Debug, PartialEq, Eq)]
struct Config {
    bpf_object: String,
    capture_req_bytes: u32,
    capture_resp_bytes: u32,
    ringbuf_bytes: u32,
    drain_interval_ms: u64,
    stats_interval_ms: u64,
    idle_flush_ms: u64,
    downgrade: features::Downgrade,
    filters: Vec<FilterSet>,
}

#[derive(Debug, PartialEq, Eq)]
enum Cli {
    Help,
    Run(Config),
}

/// A fatal condition: one stderr line and a distinct exit code.
#[derive(Debug)]
struct Fatal {
    code: i32,
    msg: String,
}

fn fatal(code: i32, msg: impl Into<String>) -> Fatal {
    Fatal { code, msg: msg.into() }
}

fn parse_num<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    flag: &str,
    v: &str,
    lo: T,
    hi: T,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!("{flag} wants a number in {lo}..={hi}, got '{v}'")),
    }
}

/// Hand-written parser: `--flag VALUE` or `--flag=VALUE`; the error text is the usage line.
fn parse_args(args: &[String]) -> Result<Cli, String> {
    let mut cfg = Config {
        bpf_object: String::new(),
        capture_req_bytes: 4096,
        capture_resp_bytes: 512,
        ringbuf_bytes: 1 << 24,
        drain_interval_ms: 50,
        stats_interval_ms: 1000,
        idle_flush_ms: 500,
        downgrade: features::Downgrade::default(),
        filters: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Cli::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if !flag.starts_with("--") {
            return Err(format!("unexpected argument '{arg}' (try --help)"));
        }
        let known = [
            "--bpf-object",
            "--capture-request-bytes",
            "--capture-response-bytes",
            "--ringbuf-bytes",
            "--drain-interval-ms",
            "--stats-interval-ms",
            "--idle-flush-ms",
            "--variants",
            "--pids",
            "--ports",
            "--cgroups",
            "--comms",
            "--ignore-pids",
        ];
        if !known.contains(&flag) {
            return Err(format!("unknown flag '{flag}' (try --help)"));
        }
        let v = match inline {
            Some(v) => v,
            None => it.next().cloned().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        match flag {
            "--bpf-object" => cfg.bpf_object = v,
            "--capture-request-bytes" => cfg.capture_req_bytes = parse_num(flag, &v, 0, PC_DATA_MAX as u32)?,
            "--capture-response-bytes" => cfg.capture_resp_bytes = parse_num(flag, &v, 0, PC_DATA_MAX as u32)?,
            "--ringbuf-bytes" => {
                let n = parse_num(flag, &v, 4096u32, 1 << 30)?;
                if !n.is_power_of_two() {
                    return Err(format!("--ringbuf-bytes must be a power of two, got {n}"));
                }
                cfg.ringbuf_bytes = n;
            }
            "--drain-interval-ms" => cfg.drain_interval_ms = parse_num(flag, &v, 1, 60_000)?,
            "--stats-interval-ms" => cfg.stats_interval_ms = parse_num(flag, &v, 1, 3_600_000)?,
            "--idle-flush-ms" => cfg.idle_flush_ms = parse_num(flag, &v, 0, 3_600_000)?,
            "--variants" => cfg.downgrade = features::Downgrade::parse(&v).map_err(|e| format!("--variants: {e}"))?,
            _ => {
                let set = filters::parse_filter(&flag[2..], &v).map_err(|e| format!("{flag}: {e}"))?;
                cfg.filters.push(set);
            }
        }
    }
    if cfg.bpf_object.is_empty() {
        return Err("--bpf-object PATH is required (try --help)".into());
    }
    Ok(Cli::Run(cfg))
}

/// First line of an error's Display (aya embeds whole verifier logs in some messages).
pub fn one_line_error(e: &dyn Error) -> String {
    e.to_string().lines().next().unwrap_or("").trim().to_string()
}

/// The error and its causes, each cut to one line, joined by ": " (repeated text dropped).
pub fn error_chain_line(e: &dyn Error) -> String {
    let mut parts: Vec<String> = vec![];
    let mut cur = Some(e);
    while let Some(err) = cur {
        let line = one_line_error(err);
        if !line.is_empty() && !parts.iter().any(|p| p.contains(&line)) {
            parts.push(line);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The errno of the first io::Error in the chain.
fn chain_errno(e: &(dyn Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        cur = err.source();
    }
    None
}

/// For a program the verifier rejected: the last line of its log that is not a statistic.
fn verifier_reason(e: &(dyn Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(ProgramError::LoadError { verifier_log, .. }) = err.downcast_ref::<ProgramError>() {
            let log = verifier_log.to_string();
            let stat = ["verification time", "stack depth", "processed ", "mark_read"];
            return log
                .lines()
                .map(str::trim)
                .rev()
                .find(|l| !l.is_empty() && !stat.iter().any(|s| l.starts_with(s)))
                .map(String::from);
        }
        cur = err.source();
    }
    None
}

/// CAP_SYS_ADMIN, or CAP_BPF plus CAP_PERFMON, in the effective set (from /proc/self/status).
fn has_bpf_privileges() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| eff & (1u64 << bit) != 0;
    has(21) || (has(39) && has(38))
}

/// Maps a load/attach failure to an exit code. EPERM/EACCES without the capabilities means
/// "not privileged"; with them it is the kernel refusing (lockdown, program type), so code 7.
fn classify(what: &str, e: &(dyn Error + 'static)) -> Fatal {
    log::debug!("{what}: full error: {e:?}");
    // The verifier says EACCES too: a log means a rejected program, not missing privileges.
    if let Some(reason) = verifier_reason(e) {
        return fatal(
            EXIT_LOAD,
            format!("{what}: {}: verifier: {reason} (PERFCATCH_LOG=debug shows the full log)", one_line_error(e)),
        );
    }
    let detail = error_chain_line(e);
    match chain_errno(e) {
        Some(libc::EPERM) | Some(libc::EACCES) if !has_bpf_privileges() => fatal(
            EXIT_PRIVILEGE,
            format!("{what}: permission denied ({detail}); run as root or grant CAP_BPF and CAP_PERFMON"),
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => fatal(
            EXIT_LOAD,
            format!("{what}: the kernel refused although the loader has CAP_BPF/CAP_SYS_ADMIN ({detail}); lockdown or unsupported program type?"),
        ),
        _ if detail.contains("tracefs not found") => fatal(
            EXIT_LOAD,
            format!("{what}: {detail}; mount it (mount -t tracefs nodev /sys/kernel/tracing) or allow the loader to"),
        ),
        _ => fatal(EXIT_LOAD, format!("{what}: {detail} (PERFCATCH_LOG=debug shows more)")),
    }
}

fn uname_release() -> String {
    // SAFETY: utsname is plain bytes; uname fills it and NUL-terminates the fields.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr()).to_string_lossy().into_owned()
    }
}

/// (major, minor) from a release like "6.18.44-fc-v669".
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut nums = release.split(|c: char| !c.is_ascii_digit());
    Some((nums.next()?.parse().ok()?, nums.next()?.parse().ok()?))
}

/// Locked memory limits BPF maps on kernels before 5.11; harmless (and possibly refused) later.
fn bump_memlock() {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } == 0 {
        return;
    }
    log::debug!("could not raise RLIMIT_MEMLOCK to infinity: {}", io::Error::last_os_error());
    // Without CAP_SYS_RESOURCE the soft limit can still go up to the hard one.
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls with valid pointers.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) == 0 {
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &cur);
        }
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn loader_info_json(cfg: &Config, programs: &[String], kernel: &str, variants: &Variants, pid: u32) -> String {
    let progs: Vec<String> = programs.iter().map(|p| json_str(p)).collect();
    format!(
        "{{\"abi\":{PC_ABI_VERSION},\"programs\":[{}],\"kernel\":{},\"variants\":{{\"syscall_args\":{},\"idle_flush\":{},\"rss\":{}}},\"capture_request_bytes\":{},\"capture_response_bytes\":{},\"ringbuf_bytes\":{},\"pid\":{pid}}}",
        progs.join(","),
        json_str(kernel),
        json_str(variants.syscall_args),
        json_str(variants.idle_flush),
        json_str(variants.rss),
        cfg.capture_req_bytes,
        cfg.capture_resp_bytes,
        cfg.ringbuf_bytes,
    )
}

/// Minimal stderr logger: "perfcatch-loader: LEVEL: message". Level from PERFCATCH_LOG.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) && r.target().starts_with("perfcatch_loader") {
            eprintln!("perfcatch-loader: {}: {}", r.level().as_str().to_lowercase(), r.args());
        }
    }
    fn flush(&self) {}
}

fn init_log() {
    let level = std::env::var("PERFCATCH_LOG").ok().and_then(|v| v.parse().ok()).unwrap_or(log::LevelFilter::Info);
    let _ = log::set_logger(&StderrLog);
    log::set_max_level(level);
}

/// Everything that lives while the loader runs.
struct Running {
    ebpf: Ebpf,
    filters: Filters,
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    idle_flush: IdleFlush,
}

fn start(cfg: &Config, out: &mut Output<File>) -> Result<Running, Fatal> {
    let release = uname_release();
    match kernel_version(&release) {
        Some(v) if v < (5, 8) => {
            return Err(fatal(EXIT_OLD_KERNEL, format!("kernel {release} is older than 5.8 (BPF ring buffer needed)")))
        }
        None => log::warn!("cannot parse kernel release '{release}', trying anyway"),
        _ => {}
    }
    if !std::path::Path::new(KERNEL_BTF).exists() {
        return Err(fatal(EXIT_NO_BTF, format!("{KERNEL_BTF} is missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y")));
    }
    let elf = std::fs::read(&cfg.bpf_object)
        .map_err(|e| fatal(EXIT_OBJECT, format!("cannot read BPF object {}: {e}", cfg.bpf_object)))?;
    let sections = attach::program_sections(&elf)
        .map_err(|e| fatal(EXIT_OBJECT, format!("{} is not a BPF ELF object: {e}", cfg.bpf_object)))?;
    let btf = Btf::from_sys_fs()
        .map_err(|e| fatal(EXIT_NO_BTF, format!("cannot parse {KERNEL_BTF}: {}", error_chain_line(&e))))?;
    bump_memlock();
    let features = Features::probe(&btf).downgraded(&cfg.downgrade);
    if !features.ringbuf {
        return Err(fatal(EXIT_OLD_KERNEL, format!("kernel {release} lacks the BPF ring buffer (bpf_ringbuf_output, Linux 5.8)")));
    }
    let mut variants = features.variants();
    let args_at_enter = u8::from(variants.syscall_args == "enter_map");

    let wakeup_bytes = cfg.ringbuf_bytes as u64 / 4;
    // Past half full the loader is behind: the kernel stops capturing payloads first.
    let shed_capture_bytes = cfg.ringbuf_bytes as u64 / 2;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .map_max_entries("events", cfg.ringbuf_bytes)
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
    let ring = ebpf
        .take_map("events")
        .ok_or_else(|| fatal(EXIT_LOAD, "BPF object has no map 'events'"))
        .and_then(|m| RingBuf::try_from(m).map_err(|e| classify("ring buffer 'events'", &e)))?;
    let counters = ebpf
        .take_map("counters")
        .ok_or_else(|| fatal(EXIT_LOAD, "BPF object has no map 'counters'"))
        .and_then(|m| PerCpuArray::try_from(m).map_err(|e| classify("map 'counters'", &e)))?;

    let programs = attach::attach_all(&mut ebpf, &sections, &btf, |name| features::plan_for(name, &variants))
        .map_err(|e| classify("attaching", &e))?;
    if programs.is_empty() {
        return Err(fatal(EXIT_LOAD, format!("{} has no program this loader can attach", cfg.bpf_object)));
    }
    let idle_flush = IdleFlush::new(&mut ebpf, &programs).map_err(|e| fatal(EXIT_LOAD, e))?;
    variants.idle_flush = idle_flush.variant();
    let json = loader_info_json(cfg, &programs, &release, &variants, me);
    let hdr = PcLoaderInfo { r#type: PC_REC_LOADER_INFO, len: json.len() as u32 };
    let mut hdr_bytes = hdr.r#type.to_le_bytes().to_vec();
    hdr_bytes.extend_from_slice(&hdr.len.to_le_bytes());
    out.write_frame(&[&hdr_bytes, json.as_bytes()]).and_then(|_| out.flush()).map_err(|e| output_fatal(&e))?;
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
    Ok(Running { ebpf, filters, ring, counters, idle_flush })
}

fn map_fatal(what: &str, e: &filters::FilterError) -> Fatal {
    match e {
        filters::FilterError::MissingMap(_) => fatal(EXIT_LOAD, format!("{what}: {e}")),
        _ => classify(what, e),
    }
}

fn output_fatal(e: &io::Error) -> Fatal {
    fatal(EXIT_OTHER, format!("writing to stdout: {e}"))
}

/// Sums the per-CPU kernel counters and writes a PC_REC_STATS frame.
fn write_stats(counters: &PerCpuArray<MapData, u64>, out: &mut Output<File>) -> io::Result<()> {
    let mut s = PcStats { r#type: PC_REC_STATS, n_kernel: PC_CNT_MAX as u32, ..Default::default() };
    for (i, slot) in s.kernel.iter_mut().enumerate() {
        match counters.get(&(i as u32), 0) {
            Ok(per_cpu) => *slot = per_cpu.iter().sum(),
            Err(e) => log::debug!("counter {i}: {e}"),
        }
    }
    s.loader = out.loader;
    out.write_frame(&[&s.to_bytes()])?;
    out.flush()
}

/// Reads control lines on a plain thread (stdin may be a file or /dev/null, which epoll refuses);
/// the channel closes on EOF.
fn spawn_stdin_reader() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn handle_command(
    line: &str,
    filters: &mut Filters,
    counters: &PerCpuArray<MapData, u64>,
    out: &mut Output<File>,
) -> io::Result<()> {
    match filters::parse_command(line) {
        Ok(None) => {}
        Ok(Some(Command::Stats)) => write_stats(counters, out)?,
        Ok(Some(Command::Set(set))) => match filters.apply(&set) {
            Ok(()) => log::debug!("filter applied: {set:?}"),
            Err(e) => log::warn!("command '{}': {}", line.trim(), error_chain_line(&e)),
        },
        Err(e) => log::warn!("ignoring bad command '{}': {e}", line.trim().escape_debug()),
    }
    Ok(())
}

/// Main loop. Returns when stdin closes or on SIGTERM/SIGINT; dropping `run` then detaches.
async fn run_loop(cfg: &Config, run: Running, out: &mut Output<File>) -> io::Result<()> {
    let Running { ebpf, mut filters, ring, counters, mut idle_flush } = run;
    // SAFETY: the AsyncFd owns the RingBuf, so the fd stays open for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }?;
    let mut drain_tick = tokio::time::interval(Duration::from_millis(cfg.drain_interval_ms));
    let mut stats_tick = tokio::time::interval(Duration::from_millis(cfg.stats_interval_ms));
    // Check for idle requests once per idle period, so one is reported within two periods:
    // each check walks every bucket of the connection map (~0.9 ms for 65,536).
    let idle_ns = cfg.idle_flush_ms * 1_000_000;
    let mut flush_tick = tokio::time::interval(Duration::from_millis(cfg.idle_flush_ms.max(1)));
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    stats_tick.tick().await; // the first tick is immediate; the first stats record comes one period in
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut control = spawn_stdin_reader();
    let reason = loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain::drain_pass(guard.get_inner_mut(), out)?;
                guard.clear_ready();
            }
            _ = drain_tick.tick() => { drain::drain_pass(ring.get_mut(), out)?; }
            _ = stats_tick.tick() => write_stats(&counters, out)?,
            _ = flush_tick.tick(), if idle_ns > 0 => idle_flush.trigger(idle_ns),
            line = control.recv() => match line {
                Some(line) => handle_command(&line, &mut filters, &counters, out)?,
                None => break "stdin closed",
            },
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        }
    };
    // Records already in the ring buffer are not lost on a clean stop.
    drain::drain_pass(ring.get_mut(), out)?;
    log::info!("{reason}: detaching and exiting");
    drop(ebpf);
    Ok(())
}

fn main() {
    init_log();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(Cli::Help) => {
            println!("{USAGE}");
            return;
        }
        Ok(Cli::Run(cfg)) => cfg,
        Err(e) => exit_with(fatal(EXIT_USAGE, e)),
    };
    // A dup of fd 1 behind our own BufWriter: std's Stdout is line-buffered, wrong for binary frames.
    let stdout = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) => exit_with(fatal(EXIT_OTHER, format!("stdout: {e}"))),
    };
    let mut out = Output::new(stdout);
    let run = match start(&cfg, &mut out) {
        Ok(run) => run,
        Err(f) => exit_with(f),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => exit_with(fatal(EXIT_OTHER, format!("tokio runtime: {e}"))),
    };
    match rt.block_on(run_loop(&cfg, run, &mut out)) {
        Ok(()) => {}
        // The reader went away: same as the parent dying, not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => log::info!("stdout closed: exiting"),
        Err(e) => exit_with(output_fatal(&e)),
    }
    // The stdin thread may still be blocked in read(); exiting the process ends it.
    std::process::exit(0);
}

fn exit_with(f: Fatal) -> ! {
    let _ = io::stderr().write_all(format!("perfcatch-loader: {}\n", f.msg.replace('\n', " ")).as_bytes());
    std::process::exit(f.code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn cfg(s: &str) -> Config {
        match parse_args(&args(s)) {
            Ok(Cli::Run(c)) => c,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = cfg("--bpf-object x.o");
        assert_eq!(c.bpf_object, "x.o");
        assert_eq!((c.capture_req_bytes, c.capture_resp_bytes), (4096, 512));
        assert_eq!(c.ringbuf_bytes, 16 * 1024 * 1024);
        assert_eq!((c.drain_interval_ms, c.stats_interval_ms), (50, 1000));
        assert!(c.filters.is_empty());
    }

    #[test]
    fn all_flags() {
        let c = cfg("--bpf-object=o --capture-request-bytes 100 --capture-response-bytes=0 --ringbuf-bytes 65536 \
                     --drain-interval-ms 5 --stats-interval-ms 250 --pids 1,2 --ports 80 --cgroups 77 --comms node --ignore-pids 9");
        assert_eq!((c.capture_req_bytes, c.capture_resp_bytes, c.ringbuf_bytes), (100, 0, 65536));
        assert_eq!((c.drain_interval_ms, c.stats_interval_ms), (5, 250));
        assert_eq!(c.filters.len(), 5);
        assert_eq!(c.filters[0], FilterSet::Pids(vec![1, 2]));
        assert_eq!(c.filters[4], FilterSet::IgnorePids(vec![9]));
    }

    #[test]
    fn empty_list_flag_is_filter_off() {
        let c = parse_args(&["--bpf-object".into(), "o".into(), "--pids".into(), "".into()]).unwrap();
        assert_eq!(c, Cli::Run(Config { filters: vec![FilterSet::Pids(vec![])], ..cfg("--bpf-object o") }));
    }

    #[test]
    fn help() {
        assert_eq!(parse_args(&args("--help")), Ok(Cli::Help));
        assert_eq!(parse_args(&args("--bpf-object o --help")), Ok(Cli::Help));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            "",
            "--capture-request-bytes 10",
            "--bpf-object",
            "--bpf-object o --capture-request-bytes 4097",
            "--bpf-object o --capture-response-bytes -1",
            "--bpf-object o --ringbuf-bytes 5000",
            "--bpf-object o --ringbuf-bytes 2048",
            "--bpf-object o --drain-interval-ms 0",
            "--bpf-object o --stats-interval-ms x",
            "--bpf-object o --pids a",
            "--bpf-object o --ports 70000",
            "--bpf-object o --frob 1",
            "--bpf-object o stray",
            "-x",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "'{bad}' should be a usage error");
        }
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
        assert!(kernel_version("5.4.0").unwrap() < (5, 8));
        assert_eq!(kernel_version("weird"), None);
    }

    #[test]
    fn loader_info_is_json() {
        let c = cfg("--bpf-object o");
        let v = Variants { syscall_args: "exit_regs", idle_flush: "kernel_walk", rss: "percpu_sum" };
        let j = loader_info_json(&c, &["a".into(), "b\"c".into()], "6.1\\x", &v, 42);
        assert_eq!(
            j,
            r#"{"abi":1,"programs":["a","b\"c"],"kernel":"6.1\\x","variants":{"syscall_args":"exit_regs","idle_flush":"kernel_walk","rss":"percpu_sum"},"capture_request_bytes":4096,"capture_response_bytes":512,"ringbuf_bytes":16777216,"pid":42}"#
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["programs"][1], "b\"c");
    }

    #[test]
    fn errno_classification() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        let f = classify("x", &e);
        assert_eq!(f.code, EXIT_LOAD);
        assert!(!f.msg.contains('\n'));
    }
}
