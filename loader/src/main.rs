//! perfcatch-loader: loads the PerfCatch BPF object, attaches every program, applies connection
//! filters (flags, then stdin commands) and streams ring-buffer records to stdout as frames.
//! See cli::usage for the command line; exit codes are exit::PC_EXIT_*.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use perfcatch_loader::cli::{self, Cli};
use perfcatch_loader::drain::Output;
use perfcatch_loader::event_loop::run_loop;
use perfcatch_loader::exit::{exit_with, fatal, output_fatal, PC_EXIT_OTHER, PC_EXIT_USAGE};
use perfcatch_loader::startup::start;
use perfcatch_loader::stderr_log::init_log;

fn main() {
    init_log();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match cli::parse_args(&args) {
        Ok(Cli::Help) => {
            println!("{}", cli::usage());
            return;
        }
        Ok(Cli::Run(cfg)) => cfg,
        Err(e) => exit_with(fatal(PC_EXIT_USAGE, e)),
    };
    // A dup of fd 1 behind our own BufWriter: std's Stdout is line-buffered, wrong for binary frames.
    let stdout = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) => exit_with(fatal(PC_EXIT_OTHER, format!("stdout: {e}"))),
    };
    let mut out = Output::new(stdout);
    let mut run = match start(&cfg, &mut out) {
        Ok(run) => run,
        Err(f) => exit_with(f),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => exit_with(fatal(PC_EXIT_OTHER, format!("tokio runtime: {e}"))),
    };
    let result = rt.block_on(run_loop(&cfg, &mut run, &mut out));
    // A stop the loader sees (stdin closed, a signal it handles, stdout gone) is a clean one: the
    // pins go, and the programs are detached as this process exits. Only a loader that dies
    // leaves them, for the next one (loader/src/pins.rs).
    run.unpin();
    match result {
        Ok(()) => {}
        // The reader went away: same as the parent dying, not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => log::info!("stdout closed: exiting"),
        Err(e) => exit_with(output_fatal(&e)),
    }
    // The stdin thread may still be blocked in read(); exiting the process ends it.
    std::process::exit(0);
}
