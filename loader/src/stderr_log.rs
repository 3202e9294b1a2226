//! Minimal stderr logger: "perfcatch-loader: LEVEL: message". Level from PERFCATCH_LOG.

struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) && r.target().starts_with("perfcatch_loader") {
            eprintln!("perfcatch-loader: {}: {}", r.level().as_str().to_lowercase(), r.args());
        }
    }
    fn flush(&self) {}
}

pub fn init_log() {
    let level = std::env::var("PERFCATCH_LOG").ok().and_then(|v| v.parse().ok()).unwrap_or(log::LevelFilter::Info);
    let _ = log::set_logger(&StderrLog);
    log::set_max_level(level);
}
