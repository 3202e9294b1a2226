//! The loader-info record (PC_REC_LOADER_INFO): written once after attaching, it tells the agent
//! the loader is up and what it runs (programs, kernel, variants, tunables) as JSON.

use std::io::{self, Write};

use crate::cli::Config;
use crate::drain::Output;
use crate::features::Variants;
use crate::record::{PcLoaderInfo, PC_ABI_VERSION, PC_REC_LOADER_INFO};

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

/// What became of the kernel state's pins (crate::pins), for the "pins" object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinsInfo {
    /// "off", "fresh" (loaded and pinned) or "reused" (taken over from the loader before).
    pub state: &'static str,
    pub dir: Option<String>,
    /// Why nothing is pinned although --pin-root asked for it.
    pub reason: Option<String>,
    /// The ring buffer map's kernel id: the same for two loaders exactly when the second took
    /// over the first one's kernel state (connection ids and counters go on).
    pub state_id: u32,
    /// The ring position this loader starts reading at.
    pub resumed_at: u64,
    /// Records at the start of the ring that the agent had received already (--resume).
    pub skipped: u64,
}

fn opt_str(s: &Option<String>) -> String {
    s.as_deref().map_or("null".into(), json_str)
}

pub fn loader_info_json(
    cfg: &Config,
    programs: &[String],
    kernel: &str,
    variants: &Variants,
    pid: u32,
    pins: &PinsInfo,
) -> String {
    let progs: Vec<String> = programs.iter().map(|p| json_str(p)).collect();
    format!(
        "{{\"abi\":{PC_ABI_VERSION},\"programs\":[{}],\"kernel\":{},\"variants\":{{\"syscall_args\":{},\"idle_flush\":{},\"rss\":{}}},\"capture_request_bytes\":{},\"capture_response_bytes\":{},\"ringbuf_bytes\":{},\"conn_table_entries\":{},\"pid\":{pid},\"pins\":{{\"state\":{},\"dir\":{},\"reason\":{},\"state_id\":{},\"resumed_at\":{},\"skipped\":{}}}}}",
        progs.join(","),
        json_str(kernel),
        json_str(variants.syscall_args),
        json_str(variants.idle_flush),
        json_str(variants.rss),
        cfg.capture_req_bytes,
        cfg.capture_resp_bytes,
        cfg.ringbuf_bytes,
        cfg.conn_table_entries,
        json_str(pins.state),
        opt_str(&pins.dir),
        opt_str(&pins.reason),
        pins.state_id,
        pins.resumed_at,
        pins.skipped,
    )
}

/// One frame: the pc_loader_info header, then the JSON; flushed so the agent sees it at once.
pub fn write_loader_info<W: Write>(out: &mut Output<W>, json: &str) -> io::Result<()> {
    let hdr = PcLoaderInfo { r#type: PC_REC_LOADER_INFO, len: json.len() as u32 };
    let mut hdr_bytes = hdr.r#type.to_le_bytes().to_vec();
    hdr_bytes.extend_from_slice(&hdr.len.to_le_bytes());
    out.write_frame(&[&hdr_bytes, json.as_bytes()])?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_info_is_json() {
        let c = Config { bpf_object: "o".into(), ..Config::default() };
        let v = Variants { syscall_args: "exit_regs", idle_flush: "kernel_walk", rss: "percpu_sum" };
        let p = PinsInfo {
            state: "off",
            dir: None,
            reason: Some("no \"bpffs\"".into()),
            state_id: 7,
            resumed_at: 0,
            skipped: 0,
        };
        let j = loader_info_json(&c, &["a".into(), "b\"c".into()], "6.1\\x", &v, 42, &p);
        assert_eq!(
            j,
            r#"{"abi":3,"programs":["a","b\"c"],"kernel":"6.1\\x","variants":{"syscall_args":"exit_regs","idle_flush":"kernel_walk","rss":"percpu_sum"},"capture_request_bytes":4096,"capture_response_bytes":512,"ringbuf_bytes":16777216,"conn_table_entries":65536,"pid":42,"pins":{"state":"off","dir":null,"reason":"no \"bpffs\"","state_id":7,"resumed_at":0,"skipped":0}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["programs"][1], "b\"c");
    }
}
