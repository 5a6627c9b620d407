//! The anomaly threshold: a running low quantile of recent log-densities.
//!
//! A point is flagged when its log-density is below the `quantile` (e.g. 0.001) of
//! the log-densities of roughly the last `window` points. The pipeline asks for the
//! threshold *before* it observes a batch (prequential), so a point never helps set
//! the threshold it is judged by.
//!
//! # Why an exact windowed order statistic rather than a quantile sketch
//!
//! Sketch crates were measured on log-densities (a 4-d Gaussian with 0.3 % far
//! outliers; a window of 100 000 points as ten merged blocks; 31 windows across a
//! shift of the distribution), against the exact quantile of the same window:
//!
//! | crate                     | q = 0.001: rank error / value error | insert |
//! |---------------------------|-------------------------------------|--------|
//! | `tdigest` 1.0 (δ = 100)   | 18 % of q / 7.8 nats                | 22 ns  |
//! | `sketches-ddsketch` 0.4 (1 %) | 4 % of q / 0.73 nats            | 12 ns  |
//! | `quantiles` 0.7 CKMS (ε = 1e-4) | exact here                    | 2.4 µs |
//!
//! The tails of log-densities are sparse (that is where outliers live), which is
//! where t-digest and DDSketch lose value accuracy; CKMS is accurate but two orders
//! of magnitude too slow for a million points per second and is unmaintained. None
//! of them offers windowing: each would need a ring of per-block sketches merged at
//! query time, and each would put its own serialized layout inside our snapshots,
//! to break when the crate changes it.
//!
//! A low quantile needs little memory to be *exact*. Split the stream into blocks
//! of `window / 10` points and keep, per block, only its `m = ⌈q·(window + block)⌉`
//! lowest values: the k-th lowest value of the window (k ≤ m) is always among the
//! k lowest of its own block. So the window's quantile is the k-th lowest of at most
//! 11·m kept values, exactly. Observing a value costs one comparison with the block's
//! current m-th lowest (a heap top), and a heap update for the few that beat it;
//! with the selection once per batch of 1024, about 6 ns a point
//! (`examples/sink_throughput.rs`). The state is a few lists of floats, plain to
//! serialize; with the defaults (q = 0.001, window = 100 000) it holds 1 210 values.
//! It grows with q (at most about 1.1·window values), which suits its purpose of
//! flagging the few lowest points.
//!
//! # The window and the quantile
//!
//! The window is the current, partly filled block plus the last ten full ones:
//! between `window` and `window + window / 10` points once the stream is that long.
//! After a shift of the distribution the threshold has entirely forgotten the old
//! one within `1.1·window` points. The quantile is the lower empirical one (the
//! k-th lowest with `k = ⌈q·n⌉`), so at most a fraction q of the window lies
//! strictly below it.
//!
//! No threshold is given until the window holds `max(100, ⌈10/q⌉)` points (so that
//! about ten values lie at or below the estimate), or the whole `window` when that
//! is smaller: a tiny window gives a noisy but usable threshold rather than none.
//!
//! NaN log-densities are ignored; −∞ counts as the lowest finite value and +∞ as the
//! highest, so the state stays representable in JSON.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Full blocks the window spans (besides the one being filled).
const BLOCKS: usize = 10;

/// Values at or below the estimate required before a threshold is given.
const MIN_TAIL_POINTS: f64 = 10.0;

/// Points required before a threshold is given, whatever the quantile.
const MIN_POINTS: usize = 100;

#[derive(Debug, Error, PartialEq)]
pub enum AnomalyError {
    #[error("the anomaly quantile must be in (0, 1), got {0}")]
    Quantile(f64),
    #[error("the anomaly window must be at least {BLOCKS} points, got {0}")]
    Window(usize),
    #[error("the saved anomaly threshold state is inconsistent: {0}")]
    State(String),
}

/// True when a point of this log-density is an anomaly under `threshold`.
pub fn is_anomaly(log_density: f64, threshold: Option<f64>) -> bool {
    threshold.is_some_and(|t| log_density < t)
}

/// The running quantile of recent log-densities; see the module documentation.
///
/// Serializes (serde) to its whole state, so a restarted daemon continues the
/// threshold where it stopped; deserializing validates that state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SavedThreshold", into = "SavedThreshold")]
pub struct AnomalyThreshold {
    quantile: f64,
    window: usize,
    block_len: usize,
    /// Lowest values kept per block.
    keep: usize,
    /// Completed blocks, oldest first; at most [`BLOCKS`].
    full: VecDeque<Block>,
    current: Block,
    /// The threshold as of the last observed value (cached: asked once per point).
    threshold: Option<f64>,
}

impl AnomalyThreshold {
    /// A threshold at `quantile` (in (0, 1)) of about the last `window` points.
    pub fn new(quantile: f64, window: usize) -> Result<Self, AnomalyError> {
        if !(quantile > 0.0 && quantile < 1.0) {
            return Err(AnomalyError::Quantile(quantile));
        }
        if window < BLOCKS {
            return Err(AnomalyError::Window(window));
        }
        let block_len = window.div_ceil(BLOCKS);
        let span = (window + block_len) as f64;
        let keep = ((quantile * span).ceil() as usize).clamp(1, block_len);
        Ok(Self {
            quantile,
            window,
            block_len,
            keep,
            full: VecDeque::with_capacity(BLOCKS + 1),
            current: Block::default(),
            threshold: None,
        })
    }

    /// `saved` when it was made with the same quantile and window, else a fresh
    /// threshold (its kept values would not answer a different question exactly).
    /// The flag tells whether `saved` was used.
    pub fn resume(
        saved: Option<Self>,
        quantile: f64,
        window: usize,
    ) -> Result<(Self, bool), AnomalyError> {
        match saved {
            Some(s) if s.quantile == quantile && s.window == window => Ok((s, true)),
            _ => Ok((Self::new(quantile, window)?, false)),
        }
    }

    pub fn quantile(&self) -> f64 {
        self.quantile
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Points the window covers now.
    pub fn len(&self) -> usize {
        self.full.iter().map(|b| b.len).sum::<usize>() + self.current.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Points needed in the window before [`AnomalyThreshold::threshold`] answers.
    pub fn min_points(&self) -> usize {
        let tail = (MIN_TAIL_POINTS / self.quantile).ceil() as usize;
        tail.max(MIN_POINTS).min(self.window)
    }

    /// The log-density below which a point is an anomaly, once enough points have
    /// been seen.
    pub fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    /// Adds the log-densities of a batch, in order.
    pub fn observe_batch(&mut self, log_densities: &[f64]) {
        for &v in log_densities {
            self.observe_one(v);
        }
        self.threshold = self.compute();
    }

    fn observe_one(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.current.push(v.clamp(f64::MIN, f64::MAX), self.keep);
        if self.current.len == self.block_len {
            self.full.push_back(std::mem::take(&mut self.current));
            if self.full.len() > BLOCKS {
                self.full.pop_front();
            }
        }
    }

    /// The k-th lowest value of the window, k = ⌈q·n⌉.
    fn compute(&self) -> Option<f64> {
        let n = self.len();
        if n < self.min_points() {
            return None;
        }
        let k = ((self.quantile * n as f64).ceil() as usize).clamp(1, n);
        let mut candidates: Vec<f64> = self
            .full
            .iter()
            .chain(std::iter::once(&self.current))
            .flat_map(|b| b.lowest.iter().map(|x| x.0))
            .collect();
        // k ≤ keep and every block keeps its `keep` lowest, so the k-th lowest of
        // the window is among the candidates (module documentation).
        let (_, kth, _) = candidates.select_nth_unstable_by(k - 1, f64::total_cmp);
        Some(*kth)
    }
}

/// One block of consecutive points: how many, and the lowest `keep` of them.
#[derive(Clone, Debug, Default)]
struct Block {
    len: usize,
    /// A max-heap, so the highest kept value is the one to evict.
    lowest: BinaryHeap<Finite>,
}

impl PartialEq for Block {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.sorted() == other.sorted()
    }
}

impl Block {
    fn push(&mut self, v: f64, keep: usize) {
        self.len += 1;
        if self.lowest.len() < keep {
            self.lowest.push(Finite(v));
        } else if let Some(mut top) = self.lowest.peek_mut() {
            if v < top.0 {
                *top = Finite(v);
            }
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.lowest.iter().map(|x| x.0).collect();
        v.sort_unstable_by(f64::total_cmp);
        v
    }
}

/// A finite f64 (NaN is filtered before), ordered for the heap.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Finite(f64);

impl Eq for Finite {}

impl PartialOrd for Finite {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Finite {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The serialized form: settings and, per block (oldest first, the one being
/// filled last), its point count and its kept lowest values in ascending order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedThreshold {
    quantile: f64,
    window: usize,
    blocks: Vec<SavedBlock>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedBlock {
    len: usize,
    lowest: Vec<f64>,
}

impl From<AnomalyThreshold> for SavedThreshold {
    fn from(t: AnomalyThreshold) -> Self {
        let blocks = t
            .full
            .iter()
            .chain(std::iter::once(&t.current))
            .map(|b| SavedBlock {
                len: b.len,
                lowest: b.sorted(),
            })
            .collect();
        Self {
            quantile: t.quantile,
            window: t.window,
            blocks,
        }
    }
}

impl TryFrom<SavedThreshold> for AnomalyThreshold {
    type Error = AnomalyError;

    fn try_from(saved: SavedThreshold) -> Result<Self, AnomalyError> {
        let mut t = AnomalyThreshold::new(saved.quantile, saved.window)?;
        let mut blocks = saved.blocks;
        let current = blocks
            .pop()
            .ok_or_else(|| AnomalyError::State("no block".into()))?;
        if blocks.len() > BLOCKS {
            return Err(AnomalyError::State(format!(
                "{} full blocks, at most {BLOCKS}",
                blocks.len()
            )));
        }
        for b in blocks {
            t.full.push_back(t.restore_block(b, true)?);
        }
        t.current = t.restore_block(current, false)?;
        t.threshold = t.compute();
        Ok(t)
    }
}

impl AnomalyThreshold {
    fn restore_block(&self, b: SavedBlock, full: bool) -> Result<Block, AnomalyError> {
        let len_ok = if full {
            b.len == self.block_len
        } else {
            b.len < self.block_len
        };
        if !len_ok || b.lowest.len() != b.len.min(self.keep) {
            return Err(AnomalyError::State(format!(
                "a block of {} points keeping {} values (blocks hold {} points, keep {})",
                b.len,
                b.lowest.len(),
                self.block_len,
                self.keep
            )));
        }
        if b.lowest.iter().any(|v| !v.is_finite()) {
            return Err(AnomalyError::State("a kept value is not finite".into()));
        }
        Ok(Block {
            len: b.len,
            lowest: b.lowest.into_iter().map(Finite).collect(),
        })
    }
}

#[cfg(test)]
mod tests;
