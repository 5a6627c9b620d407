//! The one error type of the command line, and how it maps to exit codes
//! (`docs/reference.md`, "Exit codes": 0 success, 2 bad usage or bad input, 1
//! anything else).

use std::fmt;
use std::process::ExitCode;

use gmm_io::ReadError;

/// Why a command stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The user's settings or data are at fault: exit 2.
    BadInput,
    /// Anything else (an I/O failure, a bug): exit 1.
    Failure,
    /// The reader of stdout went away (`| head`). Not an error from the user's
    /// point of view: exit 0 without a message, as `rg` and `jq` do.
    OutputClosed,
}

/// A command's failure: its kind and one sentence for the user. The cause chain is
/// kept (anyhow) so that a message reads "what: why".
#[derive(Debug)]
pub struct CliError {
    kind: Kind,
    error: anyhow::Error,
}

impl CliError {
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Self {
            kind: Kind::BadInput,
            error: error.into(),
        }
    }

    pub fn failure(error: impl Into<anyhow::Error>) -> Self {
        Self {
            kind: Kind::Failure,
            error: error.into(),
        }
    }

    pub fn output_closed() -> Self {
        Self {
            kind: Kind::OutputClosed,
            error: anyhow::anyhow!("the output was closed by its reader"),
        }
    }

    /// A message built from parts, e.g. `bad_input_msg(format!(...))`.
    pub fn bad_input_msg(message: impl fmt::Display) -> Self {
        Self::bad_input(anyhow::anyhow!("{message}"))
    }

    pub fn failure_msg(message: impl fmt::Display) -> Self {
        Self::failure(anyhow::anyhow!("{message}"))
    }

    pub fn exit_code(&self) -> ExitCode {
        match self.kind {
            Kind::BadInput => ExitCode::from(2),
            Kind::Failure => ExitCode::from(1),
            Kind::OutputClosed => ExitCode::SUCCESS,
        }
    }

    /// Whether the user should see the message at all.
    pub fn is_silent(&self) -> bool {
        self.kind == Kind::OutputClosed
    }
}

impl fmt::Display for CliError {
    /// The whole chain on one line, "outer: inner": every error shows its own
    /// context and leaves its cause to the chain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl From<ReadError> for CliError {
    /// The reader already names the input, the line and the reason; only the exit
    /// code is decided here.
    fn from(error: ReadError) -> Self {
        if error.is_bad_input() {
            Self::bad_input(error)
        } else {
            Self::failure(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_contract_exit_codes() {
        let bad = CliError::bad_input_msg("x");
        let fail = CliError::failure_msg("y");
        assert_eq!(bad.exit_code(), ExitCode::from(2));
        assert_eq!(fail.exit_code(), ExitCode::from(1));
        assert_eq!(CliError::output_closed().exit_code(), ExitCode::SUCCESS);
        assert!(CliError::output_closed().is_silent() && !bad.is_silent());
    }

    #[test]
    fn the_cause_chain_prints_on_one_line() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = CliError::bad_input(anyhow::Error::new(inner).context("data.csv"));
        assert_eq!(err.to_string(), "data.csv: no such file");
    }

    #[test]
    fn typed_errors_print_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot list the directory d")]
        struct Listing(#[source] std::io::Error);
        let inner = std::io::Error::other("Not a directory");
        let err = CliError::failure(anyhow::Error::new(Listing(inner)));
        assert_eq!(
            err.to_string(),
            "cannot list the directory d: Not a directory"
        );
    }
}
