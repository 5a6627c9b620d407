//! The E-step: weighted log-probabilities, log-sum-exp, responsibilities, and the
//! sufficient statistics they weight, in one pass over the points.
//!
//! Points are processed in blocks of [`BLOCK`] columns (small enough that the centred
//! and whitened copies stay in cache), grouped in chunks of [`CHUNK`] that run in
//! parallel. The chunking is fixed and chunk results merge in order, so the result is
//! bit-for-bit the same whatever the number of threads: a restarted daemon reproduces
//! an uninterrupted one exactly.

use nalgebra::{DMatrix, DMatrixView};
use rayon::prelude::*;

use super::covariance::Factors;
use super::linalg::{log_sum_exp, Points, GEMM_MIN_DIM};
use super::mixture::GaussianMixture;
use super::stats::SufficientStats;

pub(crate) const BLOCK: usize = 256;
pub(crate) const CHUNK: usize = 1024;

/// What an evaluation should produce besides the total log-likelihood.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvalRequest {
    pub log_density: bool,
    pub responsibilities: bool,
    pub stats: bool,
}

impl EvalRequest {
    pub const NOTHING: Self = Self {
        log_density: false,
        responsibilities: false,
        stats: false,
    };
    pub const LOG_DENSITY: Self = Self {
        log_density: true,
        ..Self::NOTHING
    };
    pub const RESPONSIBILITIES: Self = Self {
        responsibilities: true,
        ..Self::NOTHING
    };
    pub const STATS: Self = Self {
        stats: true,
        ..Self::NOTHING
    };
    pub const ALL: Self = Self {
        log_density: true,
        responsibilities: true,
        stats: true,
    };
}

/// The result of [`GaussianMixture::evaluate`]. Fields not requested are empty.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// `Σ_j ln p(x_j)`.
    pub log_likelihood: f64,
    pub n_points: usize,
    /// `ln p(x_j)` per point.
    pub log_density: Vec<f64>,
    /// K×n, column j holds γ_j.
    pub responsibilities: DMatrix<f64>,
    /// Statistics of the points weighted by their responsibilities.
    pub stats: Option<SufficientStats>,
}

impl Evaluation {
    /// Mean log-likelihood per point (NaN for no points).
    pub fn mean_log_likelihood(&self) -> f64 {
        self.log_likelihood / self.n_points as f64
    }
}

struct ChunkResult {
    log_likelihood: f64,
    log_density: Vec<f64>,
    responsibilities: Vec<f64>,
    stats: Option<SufficientStats>,
}

pub(crate) fn evaluate(model: &GaussianMixture, x: Points<'_>, request: EvalRequest) -> Evaluation {
    let n = x.ncols();
    let k = model.n_components();
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let run = |&start: &usize| {
        let len = CHUNK.min(n - start);
        evaluate_chunk(model, x.columns(start, len), request)
    };
    let chunks: Vec<ChunkResult> = if starts.len() > 1 {
        starts.par_iter().map(run).collect()
    } else {
        starts.iter().map(run).collect()
    };

    let mut out = Evaluation {
        log_likelihood: 0.0,
        n_points: n,
        log_density: Vec::with_capacity(if request.log_density { n } else { 0 }),
        responsibilities: DMatrix::zeros(if request.responsibilities { k } else { 0 }, 0),
        stats: request
            .stats
            .then(|| SufficientStats::new(model.covariance_type(), k, model.n_features())),
    };
    let mut resp = Vec::with_capacity(if request.responsibilities { k * n } else { 0 });
    for chunk in chunks {
        out.log_likelihood += chunk.log_likelihood;
        out.log_density.extend_from_slice(&chunk.log_density);
        resp.extend_from_slice(&chunk.responsibilities);
        if let (Some(total), Some(part)) = (out.stats.as_mut(), chunk.stats.as_ref()) {
            // Same covariance type, K and d by construction.
            let _ = total.merge(part);
        }
    }
    if request.responsibilities {
        out.responsibilities = DMatrix::from_vec(k, n, resp);
    }
    out
}

fn evaluate_chunk(model: &GaussianMixture, x: Points<'_>, request: EvalRequest) -> ChunkResult {
    let k = model.n_components();
    let n = x.ncols();
    let mut result = ChunkResult {
        log_likelihood: 0.0,
        log_density: Vec::with_capacity(if request.log_density { n } else { 0 }),
        responsibilities: Vec::with_capacity(if request.responsibilities { k * n } else { 0 }),
        stats: request
            .stats
            .then(|| SufficientStats::new(model.covariance_type(), k, model.n_features())),
    };
    let mut scratch = Scratch::default();
    let mut lp = Vec::new();
    for start in (0..n).step_by(BLOCK) {
        let block = x.columns(start, BLOCK.min(n - start));
        weighted_log_prob(model, block, &mut lp, &mut scratch);
        // lp becomes the responsibilities, column by column.
        for col in lp.chunks_exact_mut(k) {
            let lse = log_sum_exp(col);
            result.log_likelihood += lse;
            if request.log_density {
                result.log_density.push(lse);
            }
            normalise(col, lse);
        }
        if request.responsibilities {
            result.responsibilities.extend_from_slice(&lp);
        }
        if let Some(stats) = result.stats.as_mut() {
            stats.absorb_block(block, &lp, &mut scratch.scatter);
        }
    }
    result
}

/// Turns one point's weighted log-probabilities into responsibilities.
fn normalise(col: &mut [f64], lse: f64) {
    if lse.is_finite() {
        col.iter_mut().for_each(|v| *v = (*v - lse).exp());
    } else {
        // A point so far away that every density underflows (|x| near 1e154): it
        // explains nothing, so it is given to no component.
        col.iter_mut().for_each(|v| *v = 0.0);
    }
}

#[derive(Default)]
struct Scratch {
    centred: Vec<f64>,
    whitened: DMatrix<f64>,
    scatter: Vec<f64>,
}

/// Fills `lp` (K×B, column-major) with `ln π_k + ln N(x_j | μ_k, Σ_k)`.
fn weighted_log_prob(model: &GaussianMixture, x: Points<'_>, lp: &mut Vec<f64>, s: &mut Scratch) {
    let (d, b) = x.shape();
    let k_count = model.n_components();
    lp.clear();
    lp.resize(k_count * b, 0.0);
    let means = model.means();
    match &model.precision.factors {
        Factors::Full(inv) => {
            for (k, inv_k) in inv.iter().enumerate() {
                let mean = means.column(k);
                centre(x, mean.as_slice(), &mut s.centred);
                let sq = whitened_sq_norms(inv_k, &s.centred, d, b, &mut s.whitened);
                for (j, q) in sq.into_iter().enumerate() {
                    lp[k + j * k_count] = model.log_norm[k] - 0.5 * q;
                }
            }
        }
        Factors::Tied(inv) => {
            // y_jk = L⁻¹(x_j − c) − L⁻¹(μ_k − c): one whitening per point.
            centre(x, model.tied_centre.as_slice(), &mut s.centred);
            whiten(inv, &s.centred, d, b, &mut s.whitened);
            for j in 0..b {
                let z = s.whitened.column(j);
                for k in 0..k_count {
                    let off = model.tied_offsets.column(k);
                    let q: f64 = z
                        .iter()
                        .zip(off.iter())
                        .map(|(a, o)| (a - o) * (a - o))
                        .sum();
                    lp[k + j * k_count] = model.log_norm[k] - 0.5 * q;
                }
            }
        }
        Factors::Diag(p) => {
            for j in 0..b {
                let xj = x.column(j);
                for k in 0..k_count {
                    let (mk, pk) = (means.column(k), p.column(k));
                    let mut q = 0.0;
                    for i in 0..d {
                        let y = (xj[i] - mk[i]) * pk[i];
                        q += y * y;
                    }
                    lp[k + j * k_count] = model.log_norm[k] - 0.5 * q;
                }
            }
        }
        Factors::Spherical(p) => {
            for j in 0..b {
                let xj = x.column(j);
                for k in 0..k_count {
                    let mk = means.column(k);
                    let q: f64 = (0..d).map(|i| (xj[i] - mk[i]) * (xj[i] - mk[i])).sum();
                    lp[k + j * k_count] = model.log_norm[k] - 0.5 * q * p[k] * p[k];
                }
            }
        }
    }
}

/// `out = x − c` (each column), column-major d×B.
fn centre(x: Points<'_>, c: &[f64], out: &mut Vec<f64>) {
    out.clear();
    for col in x.column_iter() {
        out.extend(col.iter().zip(c).map(|(v, m)| v - m));
    }
}

/// `‖L⁻¹ (x_j − μ)‖²` for every column of the centred block.
fn whitened_sq_norms(
    inv: &DMatrix<f64>,
    centred: &[f64],
    d: usize,
    b: usize,
    whitened: &mut DMatrix<f64>,
) -> Vec<f64> {
    if d < GEMM_MIN_DIM {
        // L⁻¹ is lower triangular: a short forward product per point.
        return centred
            .chunks_exact(d)
            .map(|c| {
                (0..d)
                    .map(|i| {
                        let y: f64 = (0..=i).map(|l| inv[(i, l)] * c[l]).sum();
                        y * y
                    })
                    .sum()
            })
            .collect();
    }
    whiten(inv, centred, d, b, whitened);
    whitened.column_iter().map(|c| c.norm_squared()).collect()
}

/// `whitened = L⁻¹ · centred` (d×B).
fn whiten(inv: &DMatrix<f64>, centred: &[f64], d: usize, b: usize, whitened: &mut DMatrix<f64>) {
    if whitened.shape() != (d, b) {
        *whitened = DMatrix::zeros(d, b);
    }
    let c = DMatrixView::from_slice(centred, d, b);
    whitened.gemm(1.0, inv, &c, 0.0);
}
