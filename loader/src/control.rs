//! The stdin control channel: one command per line (filters::parse_command), EOF stops the loader.

use std::io::{self, BufRead, Write};

use tokio::sync::mpsc;

use crate::drain::Output;
use crate::errors::error_chain_line;
use crate::filters::{self, Command, Filters};
use crate::stats::{write_stats, StatsMaps};

/// Reads control lines on a plain thread (stdin may be a file or /dev/null, which epoll refuses);
/// the channel closes on EOF.
pub fn spawn_stdin_reader() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Applies one control line. A bad command is logged, never fatal; only output errors return.
pub fn handle_command<W: Write>(
    line: &str,
    filters: &mut Filters,
    stats: &StatsMaps,
    out: &mut Output<W>,
) -> io::Result<()> {
    match filters::parse_command(line) {
        Ok(None) => {}
        Ok(Some(Command::Stats)) => write_stats(stats, out)?,
        Ok(Some(Command::Set(set))) => match filters.apply(&set) {
            Ok(()) => log::debug!("filter applied: {set:?}"),
            Err(e) => log::warn!("command '{}': {}", line.trim(), error_chain_line(&e)),
        },
        Err(e) => log::warn!("ignoring bad command '{}': {e}", line.trim().escape_debug()),
    }
    Ok(())
}
