//! The main loop: drains the ring buffer (on wakeup and on a timer), writes stats, triggers the
//! idle flush, reclaims stale connection-table entries and applies stdin commands, until stdin
//! closes or a signal asks it to stop.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::Config;
use crate::control::{handle_command, spawn_stdin_reader};
use crate::drain::{self, Output};
use crate::pace::DrainPace;
use crate::record::{PC_DATA_HDR_SIZE, PC_DATA_MAX, PC_LCNT_CONNS_RECLAIMED};
use crate::ring::Ring;
use crate::startup::Running;
use crate::stats::write_stats;

/// One drain pass, whatever woke it; it sets when the next timed one runs (crate::pace).
fn drain_paced<W: Write>(ring: &mut Ring, out: &mut Output<W>, item: &mut Vec<u8>, pace: &mut DrainPace) -> io::Result<()> {
    pace.passed(drain::drain_pass(ring, out, item)?, Instant::now());
    Ok(())
}

/// Returns when stdin closes or on SIGTERM/SIGINT, or with the error of a write to stdout; the
/// caller then removes the pins (Running::unpin) and exits, which detaches.
pub async fn run_loop<W: Write>(cfg: &Config, run: &mut Running, out: &mut Output<W>) -> io::Result<()> {
    let Running { filters, ring, stats, idle_flush, reclaim, .. } = run;
    // SAFETY: the AsyncFd owns its dup of the ring's fd, open for as long as it is registered.
    let wake = unsafe { AsyncFd::register_with_interest(ring.fd().try_clone()?, tokio::io::Interest::READABLE) }?;
    let mut item = Vec::with_capacity(PC_DATA_HDR_SIZE + PC_DATA_MAX);
    let mut pace = DrainPace::new(Duration::from_millis(cfg.drain_interval_ms), cfg.ringbuf_bytes as u64, Instant::now());
    let mut stats_tick = tokio::time::interval(Duration::from_millis(cfg.stats_interval_ms));
    // Check for idle requests once per idle period, so one is reported within two periods:
    // each check walks every bucket of the connection map (~0.9 ms for 65,536).
    let idle_ns = cfg.idle_flush_ms * 1_000_000;
    let mut flush_tick = tokio::time::interval(Duration::from_millis(cfg.idle_flush_ms.max(1)));
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Entries are removed after two sweeps that find them stale: the idle flush has had time
    // to report a dead server's last requests (crate::reclaim). Listing the keys costs about
    // 2 µs each: a large table is swept less often, so that sweeping takes at most 1% of a CPU.
    let reclaim_period = Duration::from_millis(cfg.idle_flush_ms.clamp(2_000, 10_000));
    let mut next_sweep = tokio::time::Instant::now() + reclaim_period;
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    stats_tick.tick().await; // the first tick is immediate; the first stats record comes one period in
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut control = spawn_stdin_reader();
    let reason = loop {
        tokio::select! {
            guard = wake.readable() => {
                let mut guard = guard?;
                drain_paced(ring, out, &mut item, &mut pace)?;
                guard.clear_ready();
            }
            _ = tokio::time::sleep_until(pace.next_pass().into()) => drain_paced(ring, out, &mut item, &mut pace)?,
            // A pass stopped at its item bound: the next one runs once the other branches had a turn.
            _ = tokio::task::yield_now(), if pace.backlog() => drain_paced(ring, out, &mut item, &mut pace)?,
            _ = stats_tick.tick() => write_stats(stats, out)?,
            _ = flush_tick.tick(), if idle_ns > 0 => idle_flush.trigger(idle_ns),
            _ = tokio::time::sleep_until(next_sweep) => {
                let started = tokio::time::Instant::now();
                let n = reclaim.sweep();
                if n > 0 {
                    log::debug!("reclaimed {n} connection-table entries of fds closed unseen");
                }
                out.loader[PC_LCNT_CONNS_RECLAIMED] += n;
                next_sweep = tokio::time::Instant::now() + reclaim_period.max(started.elapsed() * 100);
            }
            line = control.recv() => match line {
                Some(line) => handle_command(&line, filters, stats, out)?,
                None => break "stdin closed",
            },
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        }
    };
    // Records already in the ring buffer are not lost on a clean stop.
    drain::drain_pass(ring, out, &mut item)?;
    log::info!("{reason}: detaching and exiting");
    Ok(())
}
