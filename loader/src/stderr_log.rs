//! Minimal stderr logger: "perfcatch-loader: LEVEL: message". Level from PERFCATCH_LOG.

struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) && r.target().starts_with("perfcatch_loader") {
            // Not eprintln!, which panics when stderr is gone (the agent died): the loader must
            // still get to its clean stop, which removes the pins (crate::pins).
            use std::io::Write;
            let _ =
                writeln!(std::io::stderr(), "perfcatch-loader: {}: {}", r.level().as_str().to_lowercase(), r.args());
        }
    }
    fn flush(&self) {}
}

pub fn init_log() {
    let level = std::env::var("PERFCATCH_LOG").ok().and_then(|v| v.parse().ok()).unwrap_or(log::LevelFilter::Info);
    let _ = log::set_logger(&StderrLog);
    log::set_max_level(level);
}
