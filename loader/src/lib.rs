//! perfcatch-loader as a library: the binary (main.rs) strings these together, and the tests
//! use them directly. bpf/perfcatch.h is the contract; record.rs and exit.rs mirror it.

pub mod attach;
pub mod cli;
pub mod control;
pub mod drain;
pub mod errors;
pub mod event_loop;
pub mod exit;
pub mod features;
pub mod filters;
pub mod idle_flush;
pub mod kernel;
pub mod loader_info;
pub mod maps;
pub mod pace;
pub mod pins;
pub mod reclaim;
pub mod record;
pub mod ring;
pub mod seed;
pub mod startup;
pub mod stats;
pub mod stderr_log;
