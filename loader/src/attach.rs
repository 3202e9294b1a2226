//! Attaches every program of the object by its ELF section name, so a new BPF program needs no
//! loader change. Aya 0.14 keeps only the program kind, not the section string, so the
//! function -> section map comes from the ELF symbol table (object crate).

use std::collections::HashMap;

use aya::programs::links::FdLink;
use aya::programs::{Program, ProgramError};
use aya::{Btf, Ebpf};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use crate::errors::error_chain_line;
use crate::features::Plan;

/// What a section name asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Hook<'a> {
    TracePoint { category: &'a str, name: &'a str },
    BtfTracePoint { name: &'a str },
    RawTracePoint { name: &'a str },
    Unsupported,
}

/// Classifies a section name (libbpf conventions).
pub fn hook_for_section(section: &str) -> Hook<'_> {
    let (kind, rest) = section.split_once('/').unwrap_or((section, ""));
    match kind {
        "tracepoint" | "tp" => match rest.split_once('/') {
            Some((category, name)) if !category.is_empty() && !name.is_empty() => Hook::TracePoint { category, name },
            _ => Hook::Unsupported,
        },
        "tp_btf" if !rest.is_empty() => Hook::BtfTracePoint { name: rest },
        "raw_tp" | "raw_tracepoint" if !rest.is_empty() => Hook::RawTracePoint { name: rest },
        _ => Hook::Unsupported,
    }
}

/// Maps every function symbol outside .text (i.e. every program entry point) to its section.
pub fn program_sections(elf: &[u8]) -> Result<HashMap<String, String>, object::Error> {
    let file = object::File::parse(elf)?;
    let mut out = HashMap::new();
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text {
            continue;
        }
        let (Ok(name), Some(idx)) = (sym.name(), sym.section_index()) else { continue };
        let section = file.section_by_index(idx)?;
        let sec_name = section.name()?;
        if sec_name != ".text" && !name.is_empty() {
            out.insert(name.to_string(), sec_name.to_string());
        }
    }
    Ok(out)
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Aya resolves `tracepoint/` ids through tracefs, which minimal hosts (and CI VMs) leave
/// unmounted. Mount it at its standard place when neither standard place is populated.
fn ensure_tracefs() {
    let populated = |p: &str| std::fs::read_dir(p).map(|mut d| d.next().is_some()).unwrap_or(false);
    if populated(TRACEFS) || populated("/sys/kernel/debug/tracing") {
        return;
    }
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let (src, dst, fs) = (c("tracefs"), c(TRACEFS), c("tracefs"));
    // SAFETY: valid NUL-terminated strings; no mount data.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        log::info!("mounted tracefs at {TRACEFS}");
    } else {
        log::debug!("tracefs is not mounted and mounting it at {TRACEFS} failed: {}", std::io::Error::last_os_error());
    }
}

/// Why one program could not be attached.
#[derive(Debug)]
pub enum AttachError {
    NoSection { program: String },
    KindMismatch { program: String, section: String },
    NotPinnable { program: String },
    Kernel { program: String, section: String, error: Box<ProgramError> },
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachError::NoSection { program } => write!(f, "program {program}: no ELF section found"),
            AttachError::KindMismatch { program, section } => {
                write!(f, "program {program}: aya's program kind does not match section {section}")
            }
            AttachError::NotPinnable { program } => write!(f, "program {program}: its link is not a bpf_link"),
            // ProgramError::LoadError embeds the whole verifier log: keep just the errno here.
            AttachError::Kernel { program, section, error } => match &**error {
                ProgramError::LoadError { io_error, .. } => {
                    write!(f, "program {program} ({section}): BPF_PROG_LOAD failed: {io_error}")
                }
                other => write!(f, "program {program} ({section}): {}", error_chain_line(other)),
            },
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttachError::Kernel { error, .. } => Some(&**error),
            _ => None,
        }
    }
}

/// The names of the programs attached, and the links taken out of them (to pin).
pub type Attached = (Vec<String>, Vec<(String, FdLink)>);

/// Loads and attaches every program whose section we understand, in name order (stable logs),
/// as `plan` says (crate::features: programs of a variant not chosen are skipped; an optional
/// one the kernel refuses is left out with a warning). Returns the names attached. Links live
/// as long as `ebpf` (dropping it detaches everything), unless `take_links`: then each link is
/// taken out and returned, to be pinned (crate::pins; every link must then be a bpf_link, as
/// tracepoints' are from Linux 5.15, aya::features().bpf_perf_link()).
pub fn attach_all(
    ebpf: &mut Ebpf,
    sections: &HashMap<String, String>,
    btf: &Btf,
    plan: impl Fn(&str) -> Plan,
    take_links: bool,
) -> Result<Attached, AttachError> {
    let mut names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    names.sort();
    if sections.values().any(|s| matches!(hook_for_section(s), Hook::TracePoint { .. })) {
        ensure_tracefs();
    }
    let mut attached = Vec::new();
    let mut links = Vec::new();
    for name in names {
        let optional = match plan(&name) {
            Plan::Skip => continue,
            Plan::Optional => true,
            Plan::Required => false,
        };
        let section = sections.get(&name).ok_or_else(|| AttachError::NoSection { program: name.clone() })?;
        let prog = ebpf.program_mut(&name).expect("name came from programs()");
        let kernel =
            |error| AttachError::Kernel { program: name.clone(), section: section.clone(), error: Box::new(error) };
        let mismatch = || AttachError::KindMismatch { program: name.clone(), section: section.clone() };
        let not_fd = || AttachError::NotPinnable { program: name.clone() };
        let link: Option<FdLink> = match (hook_for_section(section), prog) {
            (Hook::TracePoint { category, name: tp }, Program::TracePoint(p)) => {
                let result = p.load().and_then(|()| p.attach(category, tp));
                match result {
                    Err(e) if optional => {
                        log::warn!(
                            "optional program {name} not attached ({}); continuing without it",
                            error_chain_line(&e)
                        );
                        continue;
                    }
                    Err(e) => return Err(kernel(e)),
                    Ok(id) if take_links => {
                        Some(FdLink::try_from(p.take_link(id).map_err(kernel)?).map_err(|_| not_fd())?)
                    }
                    Ok(_) => None,
                }
            }
            (Hook::BtfTracePoint { name: tp }, Program::BtfTracePoint(p)) => {
                p.load(tp, btf).map_err(kernel)?;
                let id = p.attach().map_err(kernel)?;
                if take_links {
                    Some(p.take_link(id).map_err(kernel)?.into())
                } else {
                    None
                }
            }
            (Hook::RawTracePoint { name: tp }, Program::RawTracePoint(p)) => {
                p.load().map_err(kernel)?;
                let id = p.attach(tp).map_err(kernel)?;
                if take_links {
                    Some(p.take_link(id).map_err(kernel)?.into())
                } else {
                    None
                }
            }
            (Hook::Unsupported, _) => {
                log::warn!("skipping {name} ({section}): section kind not supported by this loader");
                continue;
            }
            _ => return Err(mismatch()),
        };
        log::debug!("attached {name} ({section})");
        if let Some(link) = link {
            links.push((name.clone(), link));
        }
        attached.push(name);
    }
    Ok((attached, links))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        assert_eq!(
            hook_for_section("tracepoint/syscalls/sys_enter_read"),
            Hook::TracePoint { category: "syscalls", name: "sys_enter_read" }
        );
        assert_eq!(
            hook_for_section("tp/sched/sched_switch"),
            Hook::TracePoint { category: "sched", name: "sched_switch" }
        );
        assert_eq!(hook_for_section("tp_btf/sched_switch"), Hook::BtfTracePoint { name: "sched_switch" });
        assert_eq!(hook_for_section("raw_tp/sys_enter"), Hook::RawTracePoint { name: "sys_enter" });
        assert_eq!(hook_for_section("raw_tracepoint/sys_exit"), Hook::RawTracePoint { name: "sys_exit" });
        assert_eq!(hook_for_section("uprobe/libssl.so:SSL_read"), Hook::Unsupported);
        assert_eq!(hook_for_section("uretprobe"), Hook::Unsupported);
        assert_eq!(hook_for_section("tracepoint/syscalls"), Hook::Unsupported);
        assert_eq!(hook_for_section("kprobe/tcp_sendmsg"), Hook::Unsupported);
        assert_eq!(hook_for_section("fentry/tcp_sendmsg"), Hook::Unsupported);
    }
}
