//! `gmm-stream run`: the daemon (`docs/reference.md`, "Commands").

use std::path::PathBuf;

use gmm_stream::config::Config;
use gmm_stream::daemon;
use gmm_stream::plan::Plan;

use super::CliError;

/// Runs the daemon: reads points from the configured source, updates the mixture
/// by online EM per mini-batch, writes snapshots and per-point scores. Stops at the
/// end of a finite source (file, stdin) or on SIGTERM/SIGINT, after a final
/// snapshot; a second signal exits at once.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (TOML). Every key, with its default, is documented in
    /// config/default.toml. Without a file, the built-in defaults run the generator.
    #[arg(long, short, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Sets one key, e.g. `--set model.components=8` (repeatable). Layers, later
    /// wins: defaults, the file, GMM_STREAM__SECTION__KEY variables, --set.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    sets: Vec<String>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let config = Config::load(args.config.as_deref(), &args.sets).map_err(CliError::bad_input)?;
    let plan = Plan::resolve(&config).map_err(CliError::bad_input)?;
    super::logging::init(plan.log.json, "info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gmm-stream")
        .build()
        .map_err(CliError::failure)?;
    runtime.block_on(daemon::run(plan)).map_err(|e| {
        if e.is_bad_input() {
            CliError::bad_input(e)
        } else {
            CliError::failure(e)
        }
    })
}
