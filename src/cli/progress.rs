//! What `fit` tells the user while it works: on a terminal a progress bar per
//! initialisation (indicatif), elsewhere one plain line per EM iteration (what logs
//! and scripts want, and what the tests read), nothing with `--quiet`. The outcome
//! (a summary, and the warning that EM did not converge) is printed the same way
//! in every case.

use std::io::IsTerminal;

use gmm_model::{FitReport, Iteration};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
enum Display {
    Quiet,
    Lines,
    Bars(Bars),
}

pub struct FitProgress {
    display: Display,
    n_init: usize,
    /// What each iteration reports: EM's mean log-likelihood, or the variational
    /// lower bound.
    what: &'static str,
}

impl FitProgress {
    /// Bars when stderr is a terminal; `max_iter` is the length of each bar.
    pub fn new(quiet: bool, n_init: usize, max_iter: usize) -> Self {
        let display = if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bars(Bars::new(ProgressDrawTarget::stderr(), max_iter))
        } else {
            Display::Lines
        };
        Self {
            display,
            n_init,
            what: "mean log-likelihood",
        }
    }

    /// Progress of a variational fit, whose iterations report the lower bound.
    pub fn of_lower_bound(mut self) -> Self {
        self.what = "lower bound";
        self
    }

    pub fn iteration(&mut self, it: &Iteration) {
        match &mut self.display {
            Display::Quiet => {}
            Display::Lines => eprintln!("{}", line(it, self.n_init, self.what)),
            Display::Bars(bars) => bars.iteration(it, self.n_init, self.what),
        }
    }

    /// The outcome: a summary unless quiet, and always the warning that EM did not
    /// converge (as scikit-learn warns; not for `--max-iter 0`, which only
    /// initialises).
    pub fn finished(&mut self, report: &FitReport, max_iter: usize, n_points: usize) {
        if let Display::Bars(bars) = &mut self.display {
            // Bars stop redrawing before anything else is printed under them.
            bars.finish();
        }
        if !report.converged && max_iter > 0 {
            eprintln!(
                "gmm-stream: warning: did not converge after {} iterations; \
                 increase --max-iter or --tol",
                report.n_iter
            );
        }
        if !matches!(self.display, Display::Quiet) {
            eprintln!("{}", summary(report, n_points, self.what));
        }
    }
}

/// A bar per initialisation, each kept on screen once done, so that the runs of
/// `--n-init` can be compared.
struct Bars {
    multi: MultiProgress,
    max_iter: u64,
    /// Every bar so far; the last is the running initialisation's.
    bars: Vec<(usize, ProgressBar)>,
}

impl Bars {
    fn new(target: ProgressDrawTarget, max_iter: usize) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(target),
            max_iter: max_iter as u64,
            bars: Vec::new(),
        }
    }

    fn iteration(&mut self, it: &Iteration, n_init: usize, what: &str) {
        if self.bars.last().map(|(init, _)| *init) != Some(it.init) {
            self.finish();
            let bar = self.multi.add(ProgressBar::new(self.max_iter));
            bar.set_style(running_style());
            if n_init > 1 {
                bar.set_prefix(format!("init {}/{n_init} ", it.init + 1));
            }
            self.bars.push((it.init, bar));
        }
        if let Some((_, bar)) = self.bars.last() {
            bar.set_position(it.iteration as u64);
            bar.set_message(bar_message(it, what));
        }
    }

    /// Leaves the running bar on screen in its final state.
    fn finish(&mut self) {
        if let Some((_, bar)) = self.bars.last().filter(|(_, b)| !b.is_finished()) {
            bar.set_style(done_style());
            // `abandon` keeps the position (its last iteration); `finish` would
            // jump to max_iter.
            bar.abandon();
        }
    }
}

/// The bar while EM runs: which run, how far, the current likelihood and time.
/// The bar takes what the terminal's width leaves (the text is about 70 columns).
const RUNNING: &str = "{prefix}[{wide_bar:.cyan/blue}] {pos}/{len} {msg} {elapsed}";
/// A finished run: its iterations and final likelihood, without the bar (a run
/// that converged early would show one that never filled).
const DONE: &str = "{prefix}{pos} iterations, {msg} {elapsed}";

// The templates are constants (checked by a test): the fallback is never used.
fn running_style() -> ProgressStyle {
    ProgressStyle::with_template(RUNNING)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn done_style() -> ProgressStyle {
    ProgressStyle::with_template(DONE).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// "init 2/4, " when there are several initialisations.
fn init_prefix(init: usize, n_init: usize) -> String {
    if n_init > 1 {
        format!("init {}/{n_init}, ", init + 1)
    } else {
        String::new()
    }
}

/// The mean log-likelihood is printed exactly (shortest round-trip form) so that
/// runs can be compared digit for digit; the change needs no more than a few digits.
fn message(it: &Iteration, what: &str) -> String {
    if it.iteration == 1 {
        format!("{what} {}", it.mean_log_likelihood)
    } else {
        format!(
            "{what} {} (change {:.3e})",
            it.mean_log_likelihood, it.change
        )
    }
}

/// The bar's text: short enough for an 80-column terminal, so the likelihood is
/// rounded (the plain lines keep every digit).
fn bar_message(it: &Iteration, what: &str) -> String {
    if it.iteration == 1 {
        format!("{what} {:.6}", it.mean_log_likelihood)
    } else {
        format!(
            "{what} {:.6} (change {:.1e})",
            it.mean_log_likelihood, it.change
        )
    }
}

/// One plain progress line.
fn line(it: &Iteration, n_init: usize, what: &str) -> String {
    format!(
        "{}iteration {}: {}",
        init_prefix(it.init, n_init),
        it.iteration,
        message(it, what)
    )
}

fn summary(report: &FitReport, n_points: usize, what: &str) -> String {
    let converged = if report.converged {
        "converged"
    } else {
        "stopped"
    };
    format!(
        "{converged} after {} iterations on {n_points} points: {what} {}",
        report.n_iter, report.lower_bound
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(init: usize, iteration: usize, ll: f64, change: f64) -> Iteration {
        Iteration {
            init,
            iteration,
            mean_log_likelihood: ll,
            change,
        }
    }

    #[test]
    fn plain_lines_name_the_run_only_when_there_are_several() {
        assert_eq!(
            line(&it(0, 1, -3.25, f64::NAN), 1, "mean log-likelihood"),
            "iteration 1: mean log-likelihood -3.25"
        );
        assert_eq!(
            line(&it(1, 7, -2.125, 0.000123456), 4, "mean log-likelihood"),
            "init 2/4, iteration 7: mean log-likelihood -2.125 (change 1.235e-4)"
        );
    }

    #[test]
    fn bar_text_is_short() {
        let first = bar_message(
            &it(0, 1, -1234.56789012345, f64::NAN),
            "mean log-likelihood",
        );
        assert_eq!(first, "mean log-likelihood -1234.567890");
        let later = bar_message(
            &it(0, 12, -8.518017355648816, 2.938e-9),
            "mean log-likelihood",
        );
        assert_eq!(later, "mean log-likelihood -8.518017 (change 2.9e-9)");
    }

    #[test]
    fn every_run_gets_its_own_bar_kept_in_its_final_state() {
        let mut bars = Bars::new(ProgressDrawTarget::hidden(), 100);
        for init in 0..3 {
            for i in 1..=(5 + init) {
                bars.iteration(&it(init, i, -1.0 / i as f64, 0.5), 3, "mean log-likelihood");
            }
        }
        assert_eq!(bars.bars.len(), 3);
        assert!(bars.bars[..2].iter().all(|(_, b)| b.is_finished()));
        assert!(!bars.bars[2].1.is_finished(), "the last run is still going");
        bars.finish();
        for (init, (index, bar)) in bars.bars.iter().enumerate() {
            assert_eq!(*index, init);
            assert!(bar.is_finished());
            assert_eq!(bar.position(), 5 + init as u64, "its last iteration");
            assert_eq!(bar.length(), Some(100));
            assert_eq!(bar.prefix(), format!("init {}/3 ", init + 1));
            assert_eq!(
                bar.message(),
                bar_message(
                    &it(init, 5 + init, -1.0 / (5 + init) as f64, 0.5),
                    "mean log-likelihood"
                )
            );
        }
    }

    #[test]
    fn the_bar_templates_are_valid() {
        for template in [RUNNING, DONE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }
}
