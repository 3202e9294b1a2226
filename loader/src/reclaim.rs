//! Reclaims connection-table entries whose close the kernel never saw. "conns" is a plain hash
//! (bpf/maps.bpf.h): when it is full a new connection is refused and its records are counted
//! lost, instead of a live connection being evicted silently. So entries must not leak: a
//! process that exits closes its fds without a close syscall, and close_range or dup2 close
//! them unseen too. The kernel replaces an entry whose fd number is accepted or connected again,
//! which a dead process never does.
//!
//! Every period (2 s, longer for a large table: crate::event_loop) the loader lists the table's
//! keys (about 2 µs each) and finds the stale ones: the process is gone
//! (or only its zombie is left), or, while the table is over half full, the fd is no longer a
//! socket (read from /proc, about 3 µs an entry: at most every FD_CHECK_EVERY sweeps). An
//! entry is removed once it was found stale twice in a row, the same way and with the same
//! connection id, so that the idle flush (which runs more often) has reported a dead server's
//! last requests first, and an entry made meanwhile for a new connection on that fd is kept.
//! A process whose state cannot be read (permissions) is left alone.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use aya::maps::Map;

use crate::maps::Maps;

use crate::idle_flush::map_keys;
use crate::record::PcConnKey;

/// Is it there? For a process: does any of its threads still run; for an fd: is it a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Yes,
    No,
    Unknown,
}

/// The state letter of a /proc/<pid>/stat line (after the parenthesised comm).
fn stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
}

fn read_state(path: &str) -> Result<Option<char>, std::io::Error> {
    fs::read_to_string(path).map(|s| stat_state(&s))
}

/// Whether process `tgid` still runs: a zombie has closed its fds. A leader that exited while
/// other threads run also shows as a zombie, and /proc/<tgid>/fd is then unreadable: Unknown.
pub fn process_presence(tgid: u32) -> Presence {
    match read_state(&format!("/proc/{tgid}/stat")) {
        Ok(Some('Z' | 'X')) => {}
        Ok(Some(_)) => return Presence::Yes,
        Ok(None) => return Presence::Unknown,
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => return Presence::No,
        Err(_) => return Presence::Unknown,
    }
    let Ok(tasks) = fs::read_dir(format!("/proc/{tgid}/task")) else { return Presence::No };
    for t in tasks.filter_map(Result::ok) {
        let path = t.path().join("stat");
        if let Ok(Some(s)) = read_state(&path.to_string_lossy()) {
            if s != 'Z' && s != 'X' {
                return Presence::Unknown; // a live thread: the fds are there, /proc can't show them
            }
        }
    }
    Presence::No
}

/// Whether fd `fd` of live process `tgid` is a socket.
pub fn fd_presence(tgid: u32, fd: u32) -> Presence {
    match fs::read_link(format!("/proc/{tgid}/fd/{fd}")) {
        Ok(target) if target.as_os_str().as_bytes().starts_with(b"socket:[") => Presence::Yes,
        Ok(_) => Presence::No,
        Err(e) if e.kind() == ErrorKind::NotFound => Presence::No,
        Err(_) => Presence::Unknown,
    }
}

/// The key/value part of `union bpf_attr` for BPF_MAP_LOOKUP_ELEM and BPF_MAP_DELETE_ELEM.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

fn elem_op(cmd: libc::c_long, map: &OwnedFd, key: &PcConnKey, value: Option<&mut [u8]>) -> bool {
    let attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: key as *const PcConnKey as u64,
        value: value.map_or(0, |v| v.as_mut_ptr() as u64),
        flags: 0,
    };
    // SAFETY: key points at a PcConnKey (the map's key size); value, when given, at a buffer of
    // the map's value size.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, &attr as *const ElemAttr, std::mem::size_of::<ElemAttr>()) == 0 }
}

/// Sweeps between two checks of the fds of live processes.
pub const FD_CHECK_EVERY: u64 = 15;

pub struct Reclaim {
    conns: OwnedFd,
    value_size: usize,
    max_entries: u32,
    sweeps: u64,
    /// Entries of gone processes at the previous sweep: (tgid, fd) -> their connection id.
    gone: HashMap<(u32, u32), u64>,
    /// Entries whose fd was no longer a socket at the previous fd check.
    closed: HashMap<(u32, u32), u64>,
}

impl Reclaim {
    pub fn new(maps: &Maps) -> Result<Reclaim, String> {
        let data = match maps.get("conns") {
            Some(Map::HashMap(d)) | Some(Map::LruHashMap(d)) => d,
            _ => return Err("BPF object has no hash map 'conns'".into()),
        };
        let info = data.info().map_err(|e| format!("map 'conns': {e}"))?;
        let value_size = info.value_size() as usize;
        if value_size < 8 {
            return Err(format!("map 'conns': value of {value_size} bytes has no connection id"));
        }
        let conns = data.fd().as_fd().try_clone_to_owned().map_err(|e| format!("map 'conns': {e}"))?;
        Ok(Reclaim {
            conns,
            value_size,
            max_entries: info.max_entries(),
            sweeps: 0,
            gone: HashMap::new(),
            closed: HashMap::new(),
        })
    }

    /// One sweep; returns how many entries it removed.
    pub fn sweep(&mut self) -> u64 {
        let keys = map_keys(&self.conns);
        self.sweeps += 1;
        // Reading every fd's link costs a few µs each: only when room is getting short, and
        // not at every sweep.
        let check_fds = keys.len() as u64 * 2 > self.max_entries as u64 && self.sweeps.is_multiple_of(FD_CHECK_EVERY);
        let mut processes: HashMap<u32, Presence> = HashMap::new();
        let mut gone = HashMap::new();
        let mut closed = HashMap::new();
        let mut value = vec![0u8; self.value_size];
        let mut reclaimed = 0;
        for key in keys {
            let (now, before) = match *processes.entry(key.tgid).or_insert_with(|| process_presence(key.tgid)) {
                Presence::No => (&mut gone, &self.gone),
                Presence::Yes if check_fds && fd_presence(key.tgid, key.fd) == Presence::No => {
                    (&mut closed, &self.closed)
                }
                _ => continue,
            };
            if !elem_op(BPF_MAP_LOOKUP_ELEM, &self.conns, &key, Some(&mut value)) {
                continue;
            }
            // struct conn_state begins with its conn_id (asserted in bpf/types.bpf.h).
            let conn_id = u64::from_ne_bytes(value[..8].try_into().expect("8 bytes"));
            if before.get(&(key.tgid, key.fd)) == Some(&conn_id) {
                if elem_op(BPF_MAP_DELETE_ELEM, &self.conns, &key, None) {
                    reclaimed += 1;
                }
            } else {
                now.insert((key.tgid, key.fd), conn_id);
            }
        }
        self.gone = gone;
        if check_fds {
            self.closed = closed;
        }
        reclaimed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_state_after_the_comm() {
        assert_eq!(stat_state("42 (a) b) Z 1 42 42 0"), Some('Z'));
        assert_eq!(stat_state("42 (node) S 1"), Some('S'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn this_process_and_its_sockets_are_present() {
        let me = std::process::id();
        assert_eq!(process_presence(me), Presence::Yes);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(fd_presence(me, l.as_raw_fd() as u32), Presence::Yes);
        assert_eq!(fd_presence(me, 0x3fff_fff0), Presence::No);
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(fd_presence(me, f.as_raw_fd() as u32), Presence::No, "not a socket");
    }

    #[test]
    fn a_reaped_or_zombie_process_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: a zombie once it has exited.
        for _ in 0..200 {
            if read_state(&format!("/proc/{pid}/stat")).ok().flatten() == Some('Z') {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(process_presence(pid), Presence::No, "zombie");
        child.wait().unwrap();
        assert_eq!(process_presence(pid), Presence::No, "reaped");
    }
}
