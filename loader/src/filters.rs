//! Connection filters: parsing of LISTs (shared by the CLI flags and the stdin control
//! commands) and writing them into the BPF maps named in perfcatch.h.

use std::collections::HashSet;
use std::hash::Hash;

use aya::maps::{Array, HashMap, MapData, MapError};
use aya::Pod;

use crate::maps::Maps;

use crate::record::PcFilterCfg;

/// Kernel comm is TASK_COMM_LEN = 16 bytes including the NUL, so 15 significant bytes.
const COMM_LEN: usize = 16;

/// One filter set, already parsed. An empty list switches that filter off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterSet {
    Pids(Vec<u32>),
    Ports(Vec<u16>),
    Cgroups(Vec<u64>),
    Comms(Vec<[u8; COMM_LEN]>),
    IgnorePids(Vec<u32>),
}

/// A line of the stdin control protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Set(FilterSet),
    Stats,
}

/// Parses LIST for the filter called `kind` (the stdin command word / flag name without --).
pub fn parse_filter(kind: &str, list: &str) -> Result<FilterSet, String> {
    let items = split_list(list);
    Ok(match kind {
        "pids" => FilterSet::Pids(parse_nums(&items, "pid", 1)?),
        "ignore-pids" => FilterSet::IgnorePids(parse_nums(&items, "pid", 1)?),
        "ports" => FilterSet::Ports(parse_nums(&items, "port", 1)?),
        "cgroups" => FilterSet::Cgroups(parse_nums(&items, "cgroup id", 1)?),
        "comms" => FilterSet::Comms(items.iter().map(|c| comm_key(c)).collect::<Result<_, _>>()?),
        _ => return Err(format!("unknown filter '{kind}'")),
    })
}

/// Parses one control line: `pids LIST`, `ports LIST`, `cgroups LIST`, `comms LIST`,
/// `ignore-pids LIST` or `stats`. Ok(None) for a blank line.
pub fn parse_command(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match word {
        "stats" if rest.trim().is_empty() => Ok(Some(Command::Stats)),
        "stats" => Err("'stats' takes no argument".into()),
        _ => parse_filter(word, rest.trim()).map(|s| Some(Command::Set(s))),
    }
}

/// Comma-separated, whitespace around items ignored, empty items dropped ("" means no items).
fn split_list(list: &str) -> Vec<&str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

fn parse_nums<T: std::str::FromStr + PartialOrd + From<u8>>(
    items: &[&str],
    what: &str,
    min: u8,
) -> Result<Vec<T>, String> {
    items
        .iter()
        .map(|s| match s.parse::<T>() {
            Ok(v) if v >= T::from(min) => Ok(v),
            _ => Err(format!("bad {what} '{s}'")),
        })
        .collect()
}

/// NUL-padded comm key. Longer names are cut to 15 bytes, as the kernel cuts task comms.
fn comm_key(name: &str) -> Result<[u8; COMM_LEN], String> {
    let b = name.as_bytes();
    if b.contains(&0) {
        return Err(format!("bad comm '{}'", name.escape_debug()));
    }
    let mut key = [0u8; COMM_LEN];
    let n = b.len().min(COMM_LEN - 1);
    key[..n].copy_from_slice(&b[..n]);
    Ok(key)
}

/// Owned handles on the filter maps, plus the filter_cfg value we last wrote.
pub struct Filters {
    cfg_map: Array<MapData, PcFilterCfg>,
    cfg: PcFilterCfg,
    pids: HashMap<MapData, u32, u8>,
    ports: HashMap<MapData, u16, u8>,
    cgroups: HashMap<MapData, u64, u8>,
    comms: HashMap<MapData, [u8; COMM_LEN], u8>,
    ignore: HashMap<MapData, u32, u8>,
    /// The loader and its parent: always ignored, whatever `ignore-pids` says.
    always_ignored: Vec<u32>,
}

#[derive(Debug)]
pub enum FilterError {
    MissingMap(&'static str),
    Map(&'static str, MapError),
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterError::MissingMap(m) => write!(f, "BPF object has no usable map '{m}'"),
            FilterError::Map(m, e) => write!(f, "updating map '{m}': {e}"),
        }
    }
}

impl std::error::Error for FilterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FilterError::Map(_, e) => Some(e),
            _ => None,
        }
    }
}

fn take<K: Pod, V: Pod>(maps: &mut Maps, name: &'static str) -> Result<HashMap<MapData, K, V>, FilterError> {
    let map = maps.take(name).ok_or(FilterError::MissingMap(name))?;
    HashMap::try_from(map).map_err(|e| FilterError::Map(name, e))
}

impl Filters {
    /// Takes the filter maps, writes an all-off config and the always-ignored pids (so nothing
    /// of our own is traced even before the initial flags are applied). With `keep_cfg` (maps
    /// taken over from a loader before, crate::pins) the config in the map stays as it is, so
    /// that no filter opens for a moment; the caller then sets every filter.
    pub fn new(maps: &mut Maps, always_ignored: Vec<u32>, keep_cfg: bool) -> Result<Self, FilterError> {
        let cfg_map = maps.take("filter_cfg").ok_or(FilterError::MissingMap("filter_cfg"))?;
        let cfg_map: Array<MapData, PcFilterCfg> =
            Array::try_from(cfg_map).map_err(|e| FilterError::Map("filter_cfg", e))?;
        let cfg = if keep_cfg {
            cfg_map.get(&0, 0).map_err(|e| FilterError::Map("filter_cfg", e))?
        } else {
            PcFilterCfg::default()
        };
        let mut f = Filters {
            cfg_map,
            cfg,
            pids: take(maps, "filter_pids")?,
            ports: take(maps, "filter_ports")?,
            cgroups: take(maps, "filter_cgroups")?,
            comms: take(maps, "filter_comms")?,
            ignore: take(maps, "ignore_pids")?,
            always_ignored,
        };
        if !keep_cfg {
            f.write_cfg()?;
        }
        f.apply(&FilterSet::IgnorePids(vec![]))?;
        Ok(f)
    }

    fn write_cfg(&mut self) -> Result<(), FilterError> {
        self.cfg_map.set(0, self.cfg, 0).map_err(|e| FilterError::Map("filter_cfg", e))
    }

    /// Replaces one set. Order matters for in-flight accepts: when switching on, fill the set
    /// before the flag; when switching off, drop the flag before emptying the set.
    pub fn apply(&mut self, set: &FilterSet) -> Result<(), FilterError> {
        let on = |n: usize| (n > 0) as u32;
        match set {
            FilterSet::Pids(v) => {
                let flag = on(v.len());
                self.switch(|c| &mut c.pids_on, flag, |s| replace_set(&mut s.pids, v), "filter_pids")
            }
            FilterSet::Ports(v) => {
                let flag = on(v.len());
                self.switch(|c| &mut c.ports_on, flag, |s| replace_set(&mut s.ports, v), "filter_ports")
            }
            FilterSet::Cgroups(v) => {
                let flag = on(v.len());
                self.switch(|c| &mut c.cgroups_on, flag, |s| replace_set(&mut s.cgroups, v), "filter_cgroups")
            }
            FilterSet::Comms(v) => {
                let flag = on(v.len());
                self.switch(|c| &mut c.comms_on, flag, |s| replace_set(&mut s.comms, v), "filter_comms")
            }
            FilterSet::IgnorePids(v) => {
                let mut all = v.clone();
                all.extend_from_slice(&self.always_ignored);
                replace_set(&mut self.ignore, &all).map_err(|e| FilterError::Map("ignore_pids", e))
            }
        }
    }

    fn switch(
        &mut self,
        field: impl Fn(&mut PcFilterCfg) -> &mut u32,
        flag: u32,
        fill: impl FnOnce(&mut Self) -> Result<(), MapError>,
        map: &'static str,
    ) -> Result<(), FilterError> {
        if flag == 0 {
            *field(&mut self.cfg) = 0;
            self.write_cfg()?;
        }
        fill(self).map_err(|e| FilterError::Map(map, e))?;
        if flag != 0 {
            *field(&mut self.cfg) = 1;
            self.write_cfg()?;
        }
        Ok(())
    }
}

/// Makes the map's key set equal to `want` (values 1): insert new keys, then remove stale ones.
fn replace_set<K: Pod + Eq + Hash>(map: &mut HashMap<MapData, K, u8>, want: &[K]) -> Result<(), MapError> {
    let want: HashSet<K> = want.iter().copied().collect();
    let have: Vec<K> = map.keys().collect::<Result<_, _>>()?;
    for k in &want {
        map.insert(k, 1, 0)?;
    }
    for k in have.iter().filter(|k| !want.contains(k)) {
        match map.remove(k) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comm(s: &str) -> [u8; 16] {
        comm_key(s).unwrap()
    }

    #[test]
    fn commands() {
        assert_eq!(parse_command("pids 1,2, 3"), Ok(Some(Command::Set(FilterSet::Pids(vec![1, 2, 3])))));
        assert_eq!(parse_command("  ports 80,8080  "), Ok(Some(Command::Set(FilterSet::Ports(vec![80, 8080])))));
        assert_eq!(
            parse_command("cgroups 18446744073709551615"),
            Ok(Some(Command::Set(FilterSet::Cgroups(vec![u64::MAX]))))
        );
        assert_eq!(
            parse_command("comms node,nginx"),
            Ok(Some(Command::Set(FilterSet::Comms(vec![comm("node"), comm("nginx")]))))
        );
        assert_eq!(parse_command("ignore-pids 5"), Ok(Some(Command::Set(FilterSet::IgnorePids(vec![5])))));
        assert_eq!(parse_command("stats"), Ok(Some(Command::Stats)));
        assert_eq!(parse_command(""), Ok(None));
        assert_eq!(parse_command("   "), Ok(None));
    }

    #[test]
    fn empty_list_switches_off() {
        assert_eq!(parse_command("pids"), Ok(Some(Command::Set(FilterSet::Pids(vec![])))));
        assert_eq!(parse_command("ports "), Ok(Some(Command::Set(FilterSet::Ports(vec![])))));
        assert_eq!(parse_command("comms ,"), Ok(Some(Command::Set(FilterSet::Comms(vec![])))));
    }

    #[test]
    fn bad_commands() {
        for bad in [
            "pids x",
            "pids 0",
            "pids -1",
            "ports 65536",
            "ports 0",
            "cgroups 1.5",
            "frobnicate 1",
            "stats now",
            "PIDS 1",
        ] {
            assert!(parse_command(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn comm_keys_are_nul_padded_and_cut_like_the_kernel() {
        let k = comm("python3");
        assert_eq!(&k[..8], b"python3\0");
        assert!(k[7..].iter().all(|&b| b == 0));
        let long = comm("a-very-long-process-name");
        assert_eq!(&long[..15], b"a-very-long-pro");
        assert_eq!(long[15], 0);
    }
}
