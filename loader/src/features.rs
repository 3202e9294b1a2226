//! What this kernel offers, probed at start, and the variant of each part of the BPF object
//! that follows from it (bpf/maps.bpf.h "Kernel variants"). Reported in the loader-info record,
//! so the agent's start line and /health say which variants run.
//!
//! Helpers are probed the way libbpf's `libbpf_probe_bpf_helper` does: load a three-instruction
//! tracepoint program that calls the helper and let the verifier answer. "invalid func" /
//! "unknown func" means the kernel does not know it; any other rejection (its arguments are
//! wrong on purpose) means it does. Layouts come from the kernel's BTF, as CO-RE sees them.

use std::os::fd::{FromRawFd, OwnedFd};

use aya::Btf;
use aya_obj::btf::BtfKind;

/// enum bpf_func_id values (include/uapi/linux/bpf.h; stable ABI).
const BPF_FUNC_GET_CURRENT_TASK_BTF: i32 = 158; // 5.11
const BPF_FUNC_FOR_EACH_MAP_ELEM: i32 = 164; // 5.13
const BPF_FUNC_TASK_PT_REGS: i32 = 175; // 5.15
const BPF_FUNC_RINGBUF_OUTPUT: i32 = 130; // 5.8: the floor

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;

/// The variant of each kernel-dependent part, as reported (names are the contract with the
/// agent and the kernel-matrix test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variants {
    /// "exit_regs": read at syscall exit from the entry registers (bpf_task_pt_regs);
    /// "enter_map": saved by sys_enter programs.
    pub syscall_args: &'static str,
    /// "kernel_walk": the kernel walks the connection map (bpf_for_each_map_elem);
    /// "loader_scan": the loader lists the connections to check; "off" when neither attached.
    pub idle_flush: &'static str,
    /// "percpu_sum": >= 6.2 per-CPU rss_stat counters, summed like /proc;
    /// "atomic": < 6.2 atomic counters, which /proc reads as they are.
    pub rss: &'static str,
}

/// Probe results that decide the variants.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub ringbuf: bool,
    pub task_pt_regs: bool,
    pub for_each_map_elem: bool,
    pub rss_atomic_layout: bool,
}

impl Features {
    pub fn probe(btf: &Btf) -> Features {
        let helper = |id| helper_supported(id).unwrap_or(true);
        Features {
            ringbuf: helper(BPF_FUNC_RINGBUF_OUTPUT),
            // bpf_task_pt_regs is only useful with bpf_get_current_task_btf (its argument).
            task_pt_regs: helper(BPF_FUNC_TASK_PT_REGS) && helper(BPF_FUNC_GET_CURRENT_TASK_BTF),
            for_each_map_elem: helper(BPF_FUNC_FOR_EACH_MAP_ELEM),
            // struct mm_rss_stat exists only before 6.2 (bpf/core_fixes.bpf.h, bpf/rss.bpf.h).
            rss_atomic_layout: btf.id_by_type_name_kind("mm_rss_stat", BtfKind::Struct).is_ok(),
        }
    }

    pub fn variants(&self) -> Variants {
        Variants {
            syscall_args: if self.task_pt_regs { "exit_regs" } else { "enter_map" },
            idle_flush: if self.for_each_map_elem { "kernel_walk" } else { "loader_scan" },
            rss: if self.rss_atomic_layout { "atomic" } else { "percpu_sum" },
        }
    }
}

/// Older variants asked for on the command line (`--variants`), although the kernel has more.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Downgrade {
    pub args_at_enter: bool,
    pub listed_flush: bool,
}

impl Downgrade {
    /// "syscall_args=enter_map,idle_flush=loader_scan" (either or both).
    pub fn parse(list: &str) -> Result<Downgrade, String> {
        let mut d = Downgrade::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "syscall_args=enter_map" => d.args_at_enter = true,
                "idle_flush=loader_scan" => d.listed_flush = true,
                _ => return Err(format!("unknown variant '{item}' (syscall_args=enter_map, idle_flush=loader_scan)")),
            }
        }
        Ok(d)
    }
}

impl Features {
    pub fn downgraded(mut self, d: &Downgrade) -> Features {
        self.task_pt_regs &= !d.args_at_enter;
        self.for_each_map_elem &= !d.listed_flush;
        self
    }
}

/// How the loader treats one program of the object, given the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Must load and attach, or the loader fails.
    Required,
    /// Attached when the kernel accepts it; the loader warns and goes on without it.
    Optional,
    /// Belongs to a variant not chosen on this kernel.
    Skip,
}

/// A kernel-dependent part of the object that has program variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    SyscallArgs,
    IdleFlush,
}

impl Part {
    /// The variant of this part chosen on this kernel.
    fn chosen(self, v: &Variants) -> &'static str {
        match self {
            Part::SyscallArgs => v.syscall_args,
            Part::IdleFlush => v.idle_flush,
        }
    }
}

/// One program that belongs to one variant of one part.
#[derive(Debug)]
pub struct VariantProgram {
    pub name: &'static str,
    pub part: Part,
    pub variant: &'static str,
    /// Its plan when its variant is chosen (Skip otherwise).
    pub when_chosen: Plan,
}

pub const IDLE_FLUSH_WALK: &str = "idle_flush_walk";
pub const IDLE_FLUSH_LISTED: &str = "idle_flush_listed";

const fn args_at_enter(name: &'static str) -> VariantProgram {
    VariantProgram { name, part: Part::SyscallArgs, variant: "enter_map", when_chosen: Plan::Required }
}

/// Every program of the object that belongs to a variant (bpf/request_tracker.bpf.c,
/// bpf/idle_flush.bpf.c); every program not listed is required. The idle flush is optional:
/// without it requests on idle keep-alive connections are reported late, not lost.
/// tests/layout.rs checks that each name is a program of the object.
pub const VARIANT_PROGRAMS: &[VariantProgram] = &[
    args_at_enter("args_enter_read"),
    args_at_enter("args_enter_readv"),
    args_at_enter("args_enter_recvfrom"),
    args_at_enter("args_enter_recvmsg"),
    args_at_enter("args_enter_write"),
    args_at_enter("args_enter_writev"),
    args_at_enter("args_enter_sendto"),
    args_at_enter("args_enter_sendmsg"),
    args_at_enter("args_enter_sendfile64"),
    VariantProgram {
        name: IDLE_FLUSH_WALK,
        part: Part::IdleFlush,
        variant: "kernel_walk",
        when_chosen: Plan::Optional,
    },
    VariantProgram {
        name: IDLE_FLUSH_LISTED,
        part: Part::IdleFlush,
        variant: "loader_scan",
        when_chosen: Plan::Optional,
    },
];

pub fn plan_for(program: &str, v: &Variants) -> Plan {
    match VARIANT_PROGRAMS.iter().find(|p| p.name == program) {
        None => Plan::Required,
        Some(p) if p.part.chosen(v) == p.variant => p.when_chosen,
        Some(_) => Plan::Skip,
    }
}

/// `bpf_insn` as the kernel reads it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

/// The BPF_PROG_LOAD part of `union bpf_attr`, padded: the kernel wants unknown tail bytes zero.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    _rest: [u8; 96],
}

/// Does the kernel know helper `id` in tracepoint programs? None when the probe itself could
/// not run (no privileges): the real load will then say why.
fn helper_supported(id: i32) -> Option<bool> {
    let mov = |dst: u8| Insn { code: 0xb7, regs: dst, off: 0, imm: 0 }; // r_dst = 0
    let insns = [
        mov(1),
        mov(2),
        mov(3),
        Insn { code: 0x85, regs: 0, off: 0, imm: id }, // call id
        mov(0),
        Insn { code: 0x95, regs: 0, off: 0, imm: 0 }, // exit
    ];
    let license = c"GPL";
    let mut log = vec![0u8; 16 * 1024];
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACEPOINT,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        _rest: [0; 96],
    };
    // SAFETY: attr points at live buffers for the duration of the call; size is attr's size.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &attr as *const ProgLoadAttr, std::mem::size_of::<ProgLoadAttr>())
    };
    if fd >= 0 {
        // SAFETY: the kernel just handed us this fd.
        drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        return Some(true);
    }
    let text = String::from_utf8_lossy(&log);
    if text.contains("invalid func") || text.contains("unknown func") {
        return Some(false);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) if text.trim_matches('\0').is_empty() => None,
        _ => Some(true), // rejected for its (deliberately wrong) arguments: the helper exists
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: bool, walk: bool, atomic: bool) -> Variants {
        Features { ringbuf: true, task_pt_regs: args, for_each_map_elem: walk, rss_atomic_layout: atomic }.variants()
    }

    #[test]
    fn variants_follow_features() {
        assert_eq!(
            v(true, true, false),
            Variants { syscall_args: "exit_regs", idle_flush: "kernel_walk", rss: "percpu_sum" }
        );
        assert_eq!(
            v(false, false, true),
            Variants { syscall_args: "enter_map", idle_flush: "loader_scan", rss: "atomic" }
        );
    }

    #[test]
    fn downgrades() {
        let d = Downgrade::parse("syscall_args=enter_map, idle_flush=loader_scan").unwrap();
        assert_eq!(d, Downgrade { args_at_enter: true, listed_flush: true });
        let f = Features { ringbuf: true, task_pt_regs: true, for_each_map_elem: true, rss_atomic_layout: false };
        assert_eq!(f.downgraded(&d).variants().syscall_args, "enter_map");
        assert_eq!(f.downgraded(&d).variants().idle_flush, "loader_scan");
        assert!(Downgrade::parse("rss=atomic").is_err());
        assert_eq!(Downgrade::parse("").unwrap(), Downgrade::default());
    }

    #[test]
    fn plans() {
        let new = v(true, true, false);
        let old = v(false, false, true);
        assert_eq!(plan_for("args_enter_read", &new), Plan::Skip);
        assert_eq!(plan_for("args_enter_read", &old), Plan::Required);
        assert_eq!(plan_for(IDLE_FLUSH_WALK, &new), Plan::Optional);
        assert_eq!(plan_for(IDLE_FLUSH_LISTED, &new), Plan::Skip);
        assert_eq!(plan_for(IDLE_FLUSH_WALK, &old), Plan::Skip);
        assert_eq!(plan_for(IDLE_FLUSH_LISTED, &old), Plan::Optional);
        assert_eq!(plan_for("sys_exit_read", &old), Plan::Required);
        assert_eq!(plan_for("args_enter_sendfile64", &old), Plan::Required);
        assert_eq!(plan_for("args_enter_sendfile64", &new), Plan::Skip);
        // A name is in the table or required: no prefix makes a program belong to a variant.
        assert_eq!(plan_for("args_enter_something_new", &new), Plan::Required);
    }

    /// The probe runs against the real kernel (tests run as root, like the rest of the suite).
    #[test]
    fn probes_this_kernel() {
        assert_eq!(helper_supported(BPF_FUNC_RINGBUF_OUTPUT), Some(true));
        assert_eq!(helper_supported(0x7fff_0000), Some(false), "a helper id no kernel has");
    }
}
