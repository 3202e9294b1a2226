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

pub fn loader_info_json(cfg: &Config, programs: &[String], kernel: &str, variants: &Variants, pid: u32) -> String {
    let progs: Vec<String> = programs.iter().map(|p| json_str(p)).collect();
    format!(
        "{{\"abi\":{PC_ABI_VERSION},\"programs\":[{}],\"kernel\":{},\"variants\":{{\"syscall_args\":{},\"idle_flush\":{},\"rss\":{}}},\"capture_request_bytes\":{},\"capture_response_bytes\":{},\"ringbuf_bytes\":{},\"conn_table_entries\":{},\"pid\":{pid}}}",
        progs.join(","),
        json_str(kernel),
        json_str(variants.syscall_args),
        json_str(variants.idle_flush),
        json_str(variants.rss),
        cfg.capture_req_bytes,
        cfg.capture_resp_bytes,
        cfg.ringbuf_bytes,
        cfg.conn_table_entries,
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
        let j = loader_info_json(&c, &["a".into(), "b\"c".into()], "6.1\\x", &v, 42);
        assert_eq!(
            j,
            r#"{"abi":3,"programs":["a","b\"c"],"kernel":"6.1\\x","variants":{"syscall_args":"exit_regs","idle_flush":"kernel_walk","rss":"percpu_sum"},"capture_request_bytes":4096,"capture_response_bytes":512,"ringbuf_bytes":16777216,"conn_table_entries":65536,"pid":42}"#
        );
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["programs"][1], "b\"c");
    }
}
