//! Kernel state that outlives the loader. With `--pin-root` (on bpffs) every map and every
//! program link is pinned under
//!
//!   <pin-root>/<instance>/abi<ABI>-<hash>/{maps/<map>, links/<program>, ok-<variants>}
//!
//! `<instance>` names the process that runs the loader (the agent): its pid namespace, pid and
//! start time, so that two agents on one host never share, and a loader can tell a dead
//! agent's leftovers from a live one's. `<hash>` is of the BPF object and of everything fixed at
//! load time (capture sizes, ring and table sizes, forced variants): only a loader that would
//! load exactly this takes the state over. The `ok-*` directory is made last; a state without
//! it was cut short and is removed. (bpffs refuses dots in names.)
//!
//! A loader that finds a complete state of its instance reuses it: programs stay attached
//! through their pinned links the whole time, the ring buffer keeps what was written while no
//! loader ran, connection ids and counters go on. A clean stop (stdin EOF, SIGTERM, SIGINT,
//! stdout closed) removes the state, which detaches everything; only a loader that dies
//! (SIGKILL, a crash) leaves it for the next one. Leftovers of agents that are gone (same pid
//! namespace, pid gone or started at another time) are removed at start, as are states of
//! another object in this instance.
//!
//! The loader holds an exclusive flock on its instance directory while it runs, so two
//! loaders never use one state. Without bpffs at --pin-root, or when it cannot be written,
//! the loader runs as before (nothing pinned, a restart reloads) and says why in its info
//! record.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::cli::Config;
use crate::features::Variants;
use crate::record::PC_ABI_VERSION;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const OK_PREFIX: &str = "ok-";

/// What the loader does with pins this time.
pub enum PinPlan {
    /// Nothing pinned: `reason` says why (None when no --pin-root was given).
    Off { reason: Option<String> },
    /// Load afresh and pin into `dir`.
    Fresh(StateDir),
    /// Take over the state in `dir`, whose programs were attached with `variants`.
    Reuse(StateDir, Variants),
}

/// The state directory of this object, locked for this loader.
pub struct StateDir {
    pub path: PathBuf,
    instance: PathBuf,
    _lock: OwnedFd,
}

impl StateDir {
    pub fn maps(&self) -> PathBuf {
        self.path.join("maps")
    }

    pub fn links(&self) -> PathBuf {
        self.path.join("links")
    }

    /// Makes the maps/ and links/ directories of a fresh state.
    pub fn create_dirs(&self) -> io::Result<()> {
        mkdir(&self.maps())?;
        mkdir(&self.links())
    }

    /// The last step of a fresh state: it is complete, and says its variants.
    pub fn mark_complete(&self, v: &Variants) -> io::Result<()> {
        mkdir(&self.path.join(format!("{OK_PREFIX}{}-{}-{}", v.syscall_args, v.idle_flush, v.rss)))
    }

    /// The variants of a complete state (its ok-* marker); None while incomplete.
    pub fn variants(&self) -> Option<Variants> {
        fs::read_dir(&self.path)
            .ok()?
            .filter_map(Result::ok)
            .find_map(|e| parse_variants(&e.file_name().to_string_lossy()))
    }

    /// Removes the state (its pins go, which detaches the programs once no fd holds them) and
    /// the instance directory with it when nothing else is in it.
    pub fn remove(&self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            log::warn!("removing pins {}: {e}", self.path.display());
        }
        let _ = fs::remove_dir(&self.instance);
    }

    /// The programs attached in this state, by their pinned links.
    pub fn programs(&self) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(self.links())?
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        Ok(names)
    }
}

fn mkdir(p: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(p)
}

/// FNV-1a, 64 bits: stable across builds and Rust versions (the name must not change when the
/// loader is rebuilt from the same sources).
fn fnv1a(chunks: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in chunks {
        for b in *c {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff; // chunk separator
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The state directory's name: ABI version and hash of what the load fixes.
pub fn state_name(cfg: &Config, elf: &[u8]) -> String {
    let tunables = format!(
        "{} {} {} {} {} {}",
        cfg.capture_req_bytes,
        cfg.capture_resp_bytes,
        cfg.ringbuf_bytes,
        cfg.conn_table_entries,
        cfg.downgrade.args_at_enter,
        cfg.downgrade.listed_flush
    );
    format!("abi{PC_ABI_VERSION}-{:016x}", fnv1a(&[elf, tunables.as_bytes()]))
}

fn pid_ns() -> Option<u64> {
    let link = fs::read_link("/proc/self/ns/pid").ok()?;
    link.to_str()?.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// Field 22 of /proc/<pid>/stat: start time in clock ticks after boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// `<pidns>-<pid>-<start>` of process `pid`.
fn instance_name(ns: u64, pid: u32) -> Option<String> {
    Some(format!("{ns}-{pid}-{}", start_time(pid)?))
}

fn open_dir(p: &Path) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just handed us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An exclusive lock on a directory, or None when another process holds it.
fn try_lock(p: &Path) -> io::Result<Option<OwnedFd>> {
    let fd = open_dir(p)?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(fd));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(e)
    }
}

fn is_bpffs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: statfs fills the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Removes instance directories of agents that are gone (same pid namespace as ours only:
/// another namespace's pids cannot be checked from here).
fn remove_dead_instances(root: &Path, ns: u64, mine: &str) {
    let Ok(entries) = fs::read_dir(root) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == mine {
            continue;
        }
        let parts: Vec<&str> = name.split('-').collect();
        let [Ok(their_ns), Ok(pid), Ok(start)] = [parts.first(), parts.get(1), parts.get(2)]
            .map(|p| p.ok_or(()).and_then(|s| s.parse::<u64>().map_err(|_| ())))
        else {
            continue;
        };
        if parts.len() != 3 || their_ns != ns || start_time(pid as u32) == Some(start) {
            continue;
        }
        // Gone; the lock makes sure no loader of it still runs.
        if let Ok(Some(_lock)) = try_lock(&entry.path()) {
            match fs::remove_dir_all(entry.path()) {
                Ok(()) => log::info!("removed pins of a gone agent: {}", entry.path().display()),
                Err(e) => log::warn!("removing pins of a gone agent {}: {e}", entry.path().display()),
            }
        }
    }
}

fn parse_variants(marker: &str) -> Option<Variants> {
    let rest = marker.strip_prefix(OK_PREFIX)?;
    let mut it = rest.split('-');
    let pick = |s: Option<&str>, known: &[&'static str]| known.iter().copied().find(|k| Some(*k) == s);
    let v = Variants {
        syscall_args: pick(it.next(), &["exit_regs", "enter_map"])?,
        idle_flush: pick(it.next(), &["kernel_walk", "loader_scan", "off"])?,
        rss: pick(it.next(), &["percpu_sum", "atomic"])?,
    };
    Some(v)
}

/// Decides between no pins, a fresh pinned state and taking one over. `links_pinnable` is
/// false where a tracepoint's link is no bpf_link (kernels before 5.15 attach them through a
/// perf event, which cannot be pinned): then nothing is pinned.
pub fn plan(cfg: &Config, elf: &[u8], links_pinnable: bool) -> PinPlan {
    if cfg.pin_root.is_empty() {
        return PinPlan::Off { reason: None };
    }
    let off = |reason: String| PinPlan::Off { reason: Some(reason) };
    if !links_pinnable {
        return off("this kernel attaches tracepoints through perf events, whose links cannot be pinned (BPF perf links need Linux 5.15)".into());
    }
    let root = Path::new(&cfg.pin_root);
    let parent = root.parent().unwrap_or(root);
    if !is_bpffs(root) && !is_bpffs(parent) {
        return off(format!("{} is not on a BPF filesystem (mount bpffs at /sys/fs/bpf)", root.display()));
    }
    if let Err(e) = fs::create_dir_all(root) {
        return off(format!("cannot create {}: {e}", root.display()));
    }
    let Some(ns) = pid_ns() else { return off("cannot read /proc/self/ns/pid".into()) };
    // SAFETY: getppid cannot fail.
    let parent_pid = unsafe { libc::getppid() } as u32;
    if parent_pid <= 1 {
        return off("no parent process to outlive the loader".into());
    }
    let Some(name) = instance_name(ns, parent_pid) else { return off(format!("cannot read /proc/{parent_pid}/stat")) };
    remove_dead_instances(root, ns, &name);
    let instance = root.join(&name);
    if let Err(e) = mkdir(&instance) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return off(format!("cannot create {}: {e}", instance.display()));
        }
    }
    let lock = match try_lock(&instance) {
        Ok(Some(l)) => l,
        Ok(None) => return off(format!("{} is in use by another loader", instance.display())),
        Err(e) => return off(format!("cannot lock {}: {e}", instance.display())),
    };
    let state = state_name(cfg, elf);
    // States of another object (or other load-time settings) of this instance go.
    if let Ok(entries) = fs::read_dir(&instance) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy() != state {
                log::info!("removing pins of another BPF object: {}", entry.path().display());
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = StateDir { path: instance.join(&state), instance, _lock: lock };
    if dir.path.exists() {
        if let Some(v) = dir.variants() {
            return PinPlan::Reuse(dir, v);
        }
        log::info!("removing incomplete pins {}", dir.path.display());
        if let Err(e) = fs::remove_dir_all(&dir.path) {
            return off(format!("cannot remove incomplete pins {}: {e}", dir.path.display()));
        }
    }
    if let Err(e) = mkdir(&dir.path).and_then(|()| dir.create_dirs()) {
        dir.remove();
        return off(format!("cannot create {}: {e}", dir.path.display()));
    }
    PinPlan::Fresh(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_follow_object_and_tunables() {
        let c = Config { bpf_object: "o".into(), ..Config::default() };
        let a = state_name(&c, b"elf");
        assert!(a.starts_with(&format!("abi{PC_ABI_VERSION}-")), "{a}");
        assert_eq!(a, state_name(&c, b"elf"));
        assert_ne!(a, state_name(&c, b"elf2"));
        assert_ne!(a, state_name(&Config { ringbuf_bytes: 1 << 20, ..Config::default() }, b"elf"));
        // Filters and periods are not fixed at load: same state.
        assert_eq!(a, state_name(&Config { drain_interval_ms: 5, ..Config::default() }, b"elf"));
    }

    #[test]
    fn variants_marker_round_trip() {
        let v = Variants { syscall_args: "enter_map", idle_flush: "loader_scan", rss: "atomic" };
        let m = format!("{OK_PREFIX}{}-{}-{}", v.syscall_args, v.idle_flush, v.rss);
        assert_eq!(parse_variants(&m), Some(v));
        assert_eq!(parse_variants("ok-x-y-z"), None);
        assert_eq!(parse_variants("maps"), None);
    }

    #[test]
    fn not_on_bpffs_is_off_with_a_reason() {
        let c = Config {
            pin_root: std::env::temp_dir().join("pc-pins").to_string_lossy().into_owned(),
            ..Config::default()
        };
        match plan(&c, b"elf", true) {
            PinPlan::Off { reason: Some(r) } => assert!(r.contains("not on a BPF filesystem"), "{r}"),
            _ => panic!("expected Off"),
        }
        assert!(matches!(plan(&Config::default(), b"elf", true), PinPlan::Off { reason: None }));
    }

    #[test]
    fn this_process_has_an_instance_name() {
        let ns = pid_ns().unwrap();
        let n = instance_name(ns, std::process::id()).unwrap();
        assert!(n.starts_with(&format!("{ns}-{}-", std::process::id())), "{n}");
    }
}
