//! When the next timed drain pass runs. Each pass hands a batch to the agent, and each batch
//! costs the agent a wakeup and a pipeline run on cold caches, so a quiet ring is drained at
//! the configured interval (the agent passes 500 ms). A busy one is drained at FAST_INTERVAL:
//! left for 500 ms, a flood (grpc-go at saturation) kept several MB of the ring unread, and a
//! loader or agent that then fell behind overran it. Busy means records arriving at a rate
//! that would leave an eighth of the ring unread by the next slow pass.

use std::time::{Duration, Instant};

use crate::drain::Pass;

/// The drain interval while the ring is busy (the loader's interval before batches grew).
pub const FAST_INTERVAL: Duration = Duration::from_millis(50);

pub struct DrainPace {
    slow: Duration,
    /// Bytes a second at and above which the ring counts as busy.
    busy_rate: f64,
    last_pass: Instant,
    next_pass: Instant,
    backlog: bool,
}

impl DrainPace {
    pub fn new(slow: Duration, ring_bytes: u64, now: Instant) -> Self {
        let busy_rate = (ring_bytes as f64 / 8.0) / slow.as_secs_f64().max(1e-3);
        DrainPace { slow, busy_rate, last_pass: now, next_pass: now + slow, backlog: false }
    }

    /// The wait before the next timed pass, after one that read `bytes` that arrived over
    /// `elapsed` (since the pass before).
    pub fn next_interval(&self, bytes: usize, elapsed: Duration) -> Duration {
        let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-3);
        if rate >= self.busy_rate {
            FAST_INTERVAL.min(self.slow)
        } else {
            self.slow
        }
    }

    /// A pass, whatever woke it, ran at `now`: it sets when the next timed one runs.
    pub fn passed(&mut self, pass: Pass, now: Instant) {
        self.next_pass = now + self.next_interval(pass.bytes, now.saturating_duration_since(self.last_pass));
        self.last_pass = now;
        self.backlog = pass.cut_short();
    }

    pub fn next_pass(&self) -> Instant {
        self.next_pass
    }

    /// The last pass stopped at its item bound with records waiting.
    pub fn backlog(&self) -> bool {
        self.backlog
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    #[test]
    fn quiet_ring_keeps_the_configured_interval() {
        // 16 MB ring, 500 ms: busy from 4 MB/s. 5,000 req/s of HTTP/1 is about 2.5 MB/s.
        let pace = DrainPace::new(Duration::from_millis(500), 16 * MB as u64, Instant::now());
        assert_eq!(pace.next_interval(MB + MB / 4, Duration::from_millis(500)), Duration::from_millis(500));
        assert_eq!(pace.next_interval(0, Duration::from_millis(500)), Duration::from_millis(500));
    }

    #[test]
    fn busy_ring_is_drained_fast_and_slows_down_again() {
        let pace = DrainPace::new(Duration::from_millis(500), 16 * MB as u64, Instant::now());
        // A wakeup at 4 MB unread, 200 ms after the pass before: 20 MB/s.
        assert_eq!(pace.next_interval(4 * MB, Duration::from_millis(200)), FAST_INTERVAL);
        // Still 20 MB/s over 50 ms passes.
        assert_eq!(pace.next_interval(MB, Duration::from_millis(50)), FAST_INTERVAL);
        // The flood is over.
        assert_eq!(pace.next_interval(10_000, Duration::from_millis(50)), Duration::from_millis(500));
    }

    #[test]
    fn never_slower_than_configured() {
        let pace = DrainPace::new(Duration::from_millis(20), 16 * MB as u64, Instant::now());
        assert_eq!(pace.next_interval(8 * MB, Duration::from_millis(20)), Duration::from_millis(20));
    }

    #[test]
    fn each_pass_sets_the_next_and_a_cut_short_one_asks_for_more() {
        let t0 = Instant::now();
        let mut pace = DrainPace::new(Duration::from_millis(500), 16 * MB as u64, t0);
        assert_eq!(pace.next_pass(), t0 + Duration::from_millis(500));
        let t1 = t0 + Duration::from_millis(100);
        pace.passed(Pass { items: 1 << 16, bytes: 4 * MB }, t1); // a wakeup: 40 MB/s, item bound hit
        assert_eq!(pace.next_pass(), t1 + FAST_INTERVAL);
        assert!(pace.backlog());
        let t2 = t1 + Duration::from_millis(1);
        pace.passed(Pass { items: 10, bytes: 2_000 }, t2);
        assert!(!pace.backlog());
        assert_eq!(pace.next_pass(), t2 + Duration::from_millis(500));
    }
}
