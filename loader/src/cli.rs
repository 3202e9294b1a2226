//! The command line: flags into a Config, or the usage text.

use crate::features::Downgrade;
use crate::filters::{self, FilterSet};
use crate::record::{PC_CAPTURE_REQ_DEFAULT, PC_CAPTURE_RESP_DEFAULT, PC_DATA_MAX};

/// The --help text; the defaults in it come from Config::default().
pub fn usage() -> String {
    let d = Config::default();
    format!(
        "usage: perfcatch-loader --bpf-object PATH [options]
  --capture-request-bytes N   request bytes captured per request (0..{PC_DATA_MAX}, default {req})
  --capture-response-bytes N  response bytes captured per request (0..{PC_DATA_MAX}, default {resp})
  --ringbuf-bytes N           ring buffer size, power of two, 4096..1073741824 (default {ringbuf})
  --conn-table-entries N      connections tracked at once, {min_conns}..{max_conns} (default {conns}); the
                              records of connections beyond are counted lost (conn_table_full)
  --drain-interval-ms N       ring buffer drain period (default {drain})
  --stats-interval-ms N       stats record period (default {stats})
  --idle-flush-ms N           report a request once its connection has been quiet this long
                              after the response (default {idle}; 0 = only at the next request)
  --variants LIST             use the older kernels' variants although this kernel has newer
                              features: syscall_args=enter_map, idle_flush=loader_scan (tests,
                              and a way around a misbehaving newer path)
  --pids LIST                 only trace these process ids
  --ports LIST                only trace connections accepted on these local ports
  --cgroups LIST              only trace these cgroup v2 ids
  --comms LIST                only trace these process names (cut to 15 bytes)
  --ignore-pids LIST          never trace these process ids (the loader and its parent always are)
  --pin-root DIR              pin maps and program links under DIR (on bpffs, e.g. /sys/fs/bpf/perfcatch)
                              so that a loader that dies leaves the programs attached and the
                              records in the ring buffer, and the next one takes them over; a clean
                              stop removes them (default: nothing pinned)
  --resume MARK,N             the agent received N ring records after ring mark MARK from the
                              loader before this one: not sent again (used with --pin-root)
  --help                      this text
LIST is comma-separated. Stdin takes one command per line: pids|ports|cgroups|comms|ignore-pids LIST
(replaces that set; empty LIST switches the filter off) or `stats`. Stdin EOF stops the loader.
Stdout carries frames: u32 little-endian length, then one record (bpf/perfcatch.h).",
        req = d.capture_req_bytes,
        resp = d.capture_resp_bytes,
        ringbuf = d.ringbuf_bytes,
        conns = d.conn_table_entries,
        min_conns = MIN_CONN_TABLE_ENTRIES,
        max_conns = MAX_CONN_TABLE_ENTRIES,
        drain = d.drain_interval_ms,
        stats = d.stats_interval_ms,
        idle = d.idle_flush_ms,
    )
}

/// Bounds of --conn-table-entries: an entry (struct conn_state and the hash element) is about
/// 330 bytes, preallocated.
pub const MIN_CONN_TABLE_ENTRIES: u32 = 16;
pub const MAX_CONN_TABLE_ENTRIES: u32 = 1 << 22;

/// Everything the command line sets.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub bpf_object: String,
    pub capture_req_bytes: u32,
    pub capture_resp_bytes: u32,
    pub ringbuf_bytes: u32,
    pub conn_table_entries: u32,
    pub drain_interval_ms: u64,
    pub stats_interval_ms: u64,
    pub idle_flush_ms: u64,
    pub downgrade: Downgrade,
    pub filters: Vec<FilterSet>,
    /// Where to pin (crate::pins); empty: nothing pinned.
    pub pin_root: String,
    /// (ring mark, records received after it) of the loader before (crate::drain::skip_received).
    pub resume: Option<(u64, u64)>,
}

impl Default for Config {
    /// The agent passes its own capture sizes; these defaults serve a loader run by hand.
    fn default() -> Self {
        Config {
            bpf_object: String::new(),
            capture_req_bytes: PC_CAPTURE_REQ_DEFAULT,
            capture_resp_bytes: PC_CAPTURE_RESP_DEFAULT,
            ringbuf_bytes: 1 << 24,
            conn_table_entries: 1 << 16,
            // Each drained batch costs the agent a wake-up and a pass on cold caches: at 1,000
            // req/s, batches of 200 ms took its main thread 25 µs per request against 38 µs at
            // 50 ms. Not 200 ms: with it the Java server's requests in test/e2e/accuracy.test.ts
            // drift from its own CPU clock (median error 0.27-0.32 ms in 3 runs against 0.21,
            // 0.21 and 0.28 at 50 ms, same tree, 2026-11-30: suggestive, not proven), and a first
            // try lost one capture in test/e2e/loader-restart.test.ts. Not understood (issue 16).
            drain_interval_ms: 50,
            stats_interval_ms: 1000,
            idle_flush_ms: 500,
            downgrade: Downgrade::default(),
            filters: Vec::new(),
            pin_root: String::new(),
            resume: None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Cli {
    Help,
    Run(Config),
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
pub fn parse_args(args: &[String]) -> Result<Cli, String> {
    let mut cfg = Config::default();
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
            "--conn-table-entries",
            "--drain-interval-ms",
            "--stats-interval-ms",
            "--idle-flush-ms",
            "--variants",
            "--pids",
            "--ports",
            "--cgroups",
            "--comms",
            "--ignore-pids",
            "--pin-root",
            "--resume",
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
            "--conn-table-entries" => {
                cfg.conn_table_entries = parse_num(flag, &v, MIN_CONN_TABLE_ENTRIES, MAX_CONN_TABLE_ENTRIES)?
            }
            "--drain-interval-ms" => cfg.drain_interval_ms = parse_num(flag, &v, 1, 60_000)?,
            "--stats-interval-ms" => cfg.stats_interval_ms = parse_num(flag, &v, 1, 3_600_000)?,
            "--idle-flush-ms" => cfg.idle_flush_ms = parse_num(flag, &v, 0, 3_600_000)?,
            "--pin-root" => cfg.pin_root = v,
            "--resume" => {
                let parsed =
                    v.split_once(',').and_then(|(m, n)| Some((m.trim().parse().ok()?, n.trim().parse().ok()?)));
                cfg.resume = Some(parsed.ok_or_else(|| format!("--resume wants MARK,N, got '{v}'"))?);
            }
            "--variants" => cfg.downgrade = Downgrade::parse(&v).map_err(|e| format!("--variants: {e}"))?,
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
        assert_eq!(c.conn_table_entries, 65536);
        assert_eq!((c.drain_interval_ms, c.stats_interval_ms), (50, 1000));
        assert!(c.filters.is_empty());
    }

    #[test]
    fn all_flags() {
        let c = cfg("--bpf-object=o --capture-request-bytes 100 --capture-response-bytes=0 --ringbuf-bytes 65536 \
                     --conn-table-entries 32 --drain-interval-ms 5 --stats-interval-ms 250 --pids 1,2 --ports 80 --cgroups 77 --comms node --ignore-pids 9");
        assert_eq!((c.capture_req_bytes, c.capture_resp_bytes, c.ringbuf_bytes), (100, 0, 65536));
        assert_eq!(c.conn_table_entries, 32);
        assert_eq!((c.drain_interval_ms, c.stats_interval_ms), (5, 250));
        assert_eq!(c.filters.len(), 5);
        assert_eq!(c.filters[0], FilterSet::Pids(vec![1, 2]));
        assert_eq!(c.filters[4], FilterSet::IgnorePids(vec![9]));
        let c = cfg("--bpf-object o --pin-root /sys/fs/bpf/x --resume 4096,17");
        assert_eq!((c.pin_root.as_str(), c.resume), ("/sys/fs/bpf/x", Some((4096, 17))));
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
            "--bpf-object o --conn-table-entries 15",
            "--bpf-object o --conn-table-entries 4194305",
            "--bpf-object o --drain-interval-ms 0",
            "--bpf-object o --stats-interval-ms x",
            "--bpf-object o --pids a",
            "--bpf-object o --ports 70000",
            "--bpf-object o --frob 1",
            "--bpf-object o stray",
            "--bpf-object o --resume 5",
            "--bpf-object o --resume a,1",
            "-x",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "'{bad}' should be a usage error");
        }
    }
}
