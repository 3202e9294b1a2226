//! How the loader stops when it cannot run: one stderr line and an exit code. The codes mirror
//! enum pc_loader_exit in bpf/perfcatch.h (tests/layout.rs checks them); the agent decides from
//! them whether a restart can help (src/loader/loader-process.ts).

use std::io::{self, Write};

pub const PC_EXIT_OTHER: i32 = 1;
pub const PC_EXIT_USAGE: i32 = 2;
pub const PC_EXIT_PRIVILEGE: i32 = 3;
pub const PC_EXIT_NO_BTF: i32 = 4;
pub const PC_EXIT_OLD_KERNEL: i32 = 5;
pub const PC_EXIT_OBJECT: i32 = 6;
pub const PC_EXIT_LOAD: i32 = 7;

/// A fatal condition: one stderr line and a distinct exit code.
#[derive(Debug)]
pub struct Fatal {
    pub code: i32,
    pub msg: String,
}

pub fn fatal(code: i32, msg: impl Into<String>) -> Fatal {
    Fatal { code, msg: msg.into() }
}

pub fn output_fatal(e: &io::Error) -> Fatal {
    fatal(PC_EXIT_OTHER, format!("writing to stdout: {e}"))
}

/// Writes the one stderr line (none for an empty message: a child of the loader wrote it,
/// crate::startup) and exits with the code.
pub fn exit_with(f: Fatal) -> ! {
    if !f.msg.is_empty() {
        let _ = io::stderr().write_all(format!("perfcatch-loader: {}\n", f.msg.replace('\n', " ")).as_bytes());
    }
    std::process::exit(f.code);
}
