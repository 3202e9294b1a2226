//! Servers that were already listening when the loader started. The kernel learns of a server
//! at its listen() or accept(); one started before the loader (or before a loader restart)
//! would otherwise go unseen until it accepts again, and its open keep-alive connections would
//! look like outbound ones. So at start the loader reads /proc: every listening TCP port (from
//! each network namespace's /proc/<pid>/net/tcp{,6}) goes into "listen_ports", and every process
//! holding a listening socket into "server_tgids". The kernel then adopts their connections at
//! their next request, through the same filters as accept() (bpf/admission.bpf.h).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{HashMap, Map, MapData};

use crate::maps::Maps;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listening {
    pub ports: BTreeSet<u16>,
    pub pids: BTreeSet<u32>,
}

/// Listening sockets of one /proc/<pid>/net/tcp{,6} file: inode -> local port.
pub fn parse_proc_net_tcp(text: &str, out: &mut BTreeMap<u64, u16>) {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        if f.len() < 10 || f[3] != "0A" {
            continue; // 0A = TCP_LISTEN
        }
        let Some(port) = f[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) else { continue };
        let Ok(inode) = f[9].parse::<u64>() else { continue };
        if inode != 0 {
            out.insert(inode, port);
        }
    }
}

fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Every listening TCP socket on the host and the processes that hold one.
pub fn scan() -> Listening {
    let pids = pids();
    let mut inodes: BTreeMap<u64, u16> = BTreeMap::new();
    let mut seen_netns: HashSet<String> = HashSet::new();
    for pid in &pids {
        let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/net")) else { continue };
        if !seen_netns.insert(ns.to_string_lossy().into_owned()) {
            continue; // one read per network namespace
        }
        for file in ["tcp", "tcp6"] {
            if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) {
                parse_proc_net_tcp(&text, &mut inodes);
            }
        }
    }
    let mut out = Listening { ports: inodes.values().copied().collect(), pids: BTreeSet::new() };
    for pid in pids {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        let holds_listener = fds.filter_map(|e| e.ok()).any(|e| {
            let Ok(target) = fs::read_link(e.path()) else { return false };
            let t = target.to_string_lossy();
            t.strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|inode| inodes.contains_key(&inode))
        });
        if holds_listener {
            out.pids.insert(pid);
        }
    }
    out
}

/// The BPF_MAP_UPDATE_ELEM part of `union bpf_attr`.
#[repr(C)]
struct UpdateAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_NOEXIST: u64 = 1;

/// Puts what `scan` found into the kernel's maps. server_tgids values are kernel-private
/// (struct server_process in bpf/types.bpf.h): a new entry starts zeroed, as in the kernel.
pub fn seed(maps: &mut Maps, found: &Listening) -> Result<(), String> {
    let mut ports: HashMap<&mut MapData, u16, u8> =
        HashMap::try_from(maps.get_mut("listen_ports").ok_or("BPF object has no map 'listen_ports'")?)
            .map_err(|e| format!("map 'listen_ports': {e}"))?;
    for port in &found.ports {
        ports.insert(port, 1, 0).map_err(|e| format!("map 'listen_ports': {e}"))?;
    }
    let tgids = match maps.get("server_tgids") {
        Some(Map::LruHashMap(d)) | Some(Map::HashMap(d)) => d,
        _ => return Err("BPF object has no hash map 'server_tgids'".into()),
    };
    let value_size = tgids.info().map_err(|e| format!("map 'server_tgids': {e}"))?.value_size() as usize;
    let zero = vec![0u8; value_size];
    for pid in &found.pids {
        let attr = UpdateAttr {
            map_fd: tgids.fd().as_fd().as_raw_fd() as u32,
            _pad: 0,
            key: pid as *const u32 as u64,
            value: zero.as_ptr() as u64,
            flags: BPF_NOEXIST,
        };
        // SAFETY: key and value point at live buffers of the map's key and value sizes.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                &attr as *const UpdateAttr,
                std::mem::size_of::<UpdateAttr>(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(format!("map 'server_tgids': {e}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_sockets_only() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 -1\n";
        let mut out = BTreeMap::new();
        parse_proc_net_tcp(text, &mut out);
        assert_eq!(out, BTreeMap::from([(4242, 8080)]));
    }

    /// A real listener in this test process is found, with its port and pid.
    #[test]
    fn finds_a_real_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = scan();
        assert!(found.ports.contains(&port), "port {port} in {:?}", found.ports);
        assert!(found.pids.contains(&std::process::id()));
    }
}
