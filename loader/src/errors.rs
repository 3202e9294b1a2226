//! Load and attach errors turned into a Fatal: one readable line (aya embeds whole verifier
//! logs in some messages) and the exit code that says whose problem it is.

use std::error::Error;
use std::io;

use aya::programs::ProgramError;

use crate::exit::{fatal, Fatal, PC_EXIT_LOAD, PC_EXIT_PRIVILEGE};

/// First line of an error's Display.
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
/// "not privileged"; with them it is the kernel refusing (lockdown, program type), so PC_EXIT_LOAD.
pub fn classify(what: &str, e: &(dyn Error + 'static)) -> Fatal {
    log::debug!("{what}: full error: {e:?}");
    // The verifier says EACCES too: a log means a rejected program, not missing privileges.
    if let Some(reason) = verifier_reason(e) {
        return fatal(
            PC_EXIT_LOAD,
            format!("{what}: {}: verifier: {reason} (PERFCATCH_LOG=debug shows the full log)", one_line_error(e)),
        );
    }
    let detail = error_chain_line(e);
    match chain_errno(e) {
        Some(libc::EPERM) | Some(libc::EACCES) if !has_bpf_privileges() => fatal(
            PC_EXIT_PRIVILEGE,
            format!("{what}: permission denied ({detail}); run as root or grant CAP_BPF and CAP_PERFMON"),
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => fatal(
            PC_EXIT_LOAD,
            format!("{what}: the kernel refused although the loader has CAP_BPF/CAP_SYS_ADMIN ({detail}); lockdown or unsupported program type?"),
        ),
        _ if detail.contains("tracefs not found") => fatal(
            PC_EXIT_LOAD,
            format!("{what}: {detail}; mount it (mount -t tracefs nodev /sys/kernel/tracing) or allow the loader to"),
        ),
        _ => fatal(PC_EXIT_LOAD, format!("{what}: {detail} (PERFCATCH_LOG=debug shows more)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classification() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        let f = classify("x", &e);
        assert_eq!(f.code, PC_EXIT_LOAD);
        assert!(!f.msg.contains('\n'));
    }
}
