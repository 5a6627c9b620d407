//! The `gmm-stream` binary: parses the command line, sets up logging, runs the
//! command and turns its outcome into an exit code (`docs/reference.md`, "Exit
//! codes").

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints its own usage errors and exits with 2 (and 0 for --help).
    let args = cli::Cli::parse();
    if !args.command.sets_up_logging() {
        cli::logging::init(false, "warn");
    }
    install_panic_hook();
    // A panic is a bug; it still ends as one line and exit code 1, never a dump.
    match std::panic::catch_unwind(|| args.command.run()) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            if !error.is_silent() {
                eprintln!("gmm-stream: {error}");
            }
            error.exit_code()
        }
        Err(_) => ExitCode::from(1),
    }
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        eprintln!(
            "gmm-stream: internal error{location}: {message} (this is a bug; please report it)"
        );
    }));
}
