//! The bottom floor of the daemon: the counters every stage updates, the one table
//! of metrics published from them, the status lines that report them, and how an
//! error is written to the log. It knows no stage: stages call into it.

mod chain;
mod counters;
pub mod metrics;
pub mod status;

pub use chain::Chain;
pub use counters::Counters;
