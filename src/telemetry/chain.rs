//! An error and its causes on one line, for logs.
//!
//! Every error of the crate shows its own context only and chains its cause
//! (`source`); whoever prints one prints the chain, "context: cause: cause".

use std::error::Error;
use std::fmt;

/// Displays `error` followed by each of its causes, separated by ": ".
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the snapshot s.json")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_is_printed_once_after_its_context() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(
            Chain(&error).to_string(),
            "cannot write the snapshot s.json: disk full"
        );
    }
}
