//! The command line: one module per subcommand, each an `Args` struct (clap) and a
//! `run(args) -> Result<(), CliError>`. Adding a command is a module, a variant of
//! [`Command`] and an arm of [`Command::run`].

mod error;
mod fit;
mod fit_bayesian;
mod healthcheck;
mod input;
mod inspect;
pub mod logging;
mod model_file;
mod output;
mod plot;
mod progress;
mod run;
mod sample;
mod score;
mod score_format;
mod values;

pub use error::CliError;

/// A streaming Gaussian-mixture estimator
#[derive(Debug, clap::Parser)]
#[command(
    name = "gmm-stream",
    version,
    long_about = "A streaming Gaussian-mixture estimator: batch EM with scikit-learn's \
        semantics (fit), scoring and sampling under a model (score, sample), model \
        summaries (inspect), pictures of models and snapshots (plot), and the daemon (run).\n\n\
        Exit codes: 0 success, 2 bad usage or bad input, 1 any other failure. Errors are \
        printed to stderr as one sentence naming the file and the reason. Set RUST_LOG \
        (e.g. RUST_LOG=debug) for diagnostic logs on stderr."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Fit(fit::Args),
    Score(score::Args),
    Sample(sample::Args),
    Inspect(inspect::Args),
    Run(run::Args),
    Healthcheck(healthcheck::Args),
    Plot(plot::Args),
}

impl Command {
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Command::Fit(args) => fit::run(args),
            Command::Score(args) => score::run(args),
            Command::Sample(args) => sample::run(args),
            Command::Inspect(args) => inspect::run(args),
            Command::Run(args) => run::run(args),
            Command::Healthcheck(args) => healthcheck::run(args),
            Command::Plot(args) => plot::run(args),
        }
    }

    /// The daemon sets up its own logging once its configuration is read.
    pub fn sets_up_logging(&self) -> bool {
        matches!(self, Command::Run(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
