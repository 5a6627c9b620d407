//! What `fit` tells the user while it works, kept in one place so that a richer
//! display (a progress bar on a terminal) replaces one type.

use gmm_stream::model::{FitReport, Iteration};

/// Progress lines on stderr, one per EM iteration, unless quiet.
pub struct FitProgress {
    quiet: bool,
    n_init: usize,
}

impl FitProgress {
    pub fn new(quiet: bool, n_init: usize) -> Self {
        Self { quiet, n_init }
    }

    /// The mean log-likelihood is printed exactly (shortest round-trip form) so
    /// that runs can be compared digit for digit; the change needs no more than a
    /// few digits.
    pub fn iteration(&self, it: &Iteration) {
        if self.quiet {
            return;
        }
        let init = if self.n_init > 1 {
            format!("init {}/{}, ", it.init + 1, self.n_init)
        } else {
            String::new()
        };
        let change = if it.iteration == 1 {
            String::new()
        } else {
            format!(" (change {:.3e})", it.change)
        };
        eprintln!(
            "{init}iteration {}: mean log-likelihood {}{change}",
            it.iteration, it.mean_log_likelihood
        );
    }

    /// The outcome: a summary unless quiet, and always the warning that EM did not
    /// converge (as scikit-learn warns; not for `--max-iter 0`, which only
    /// initialises).
    pub fn finished(&self, report: &FitReport, max_iter: usize, n_points: usize) {
        if !report.converged && max_iter > 0 {
            eprintln!(
                "gmm-stream: warning: did not converge after {} iterations; \
                 increase --max-iter or --tol",
                report.n_iter
            );
        }
        if !self.quiet {
            let converged = if report.converged {
                "converged"
            } else {
                "stopped"
            };
            eprintln!(
                "{converged} after {} iterations on {n_points} points: mean log-likelihood {}",
                report.n_iter, report.lower_bound
            );
        }
    }
}
