//! The E-step: weighted log-probabilities, log-sum-exp, responsibilities, and the
//! sufficient statistics they weight, in one pass over the points.
//!
//! Points are processed in blocks of [`BLOCK`] columns (small enough that the centred
//! and weighted copies stay in cache), grouped in chunks of [`CHUNK`] that run in
//! parallel. Within a chunk, each component's statistics are sums about a centre,
//! normally its mean μ_k (the centring the densities needed anyway), turned into a
//! weighted mean and a scatter about it by the exact shift (see `ChunkStats`).
//! The chunking is fixed and chunk results merge in order, so the result is
//! bit-for-bit the same whatever the number of threads: a restarted daemon reproduces
//! an uninterrupted one exactly. The kernels themselves are in `kernels` (densities and
//! responsibilities) and `block_stats` (statistics), on the vectors of `simd`.

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::block_stats::{add_block_scatter, block_moments, CentredSums, BLOCK};
use super::covariance::{CovarianceType, Factors};
use super::kernels::{
    diag_log_prob, offset_log_prob, pack_lower_rows, resp_log_resp, responsibilities,
    spherical_log_prob, transpose_points, whiten_points, whitened_log_prob,
};
use super::linalg::Points;
use super::mixture::GaussianMixture;
#[cfg(target_arch = "x86_64")]
use super::simd::Avx2;
use super::simd::{padded, Portable, Simd};
use super::stats::SufficientStats;

/// Points per parallel task: small enough that a daemon batch of 4096 points still
/// keeps two threads busy, large enough to amortise the per-chunk merge.
pub(crate) const CHUNK: usize = 1024;

/// What an evaluation should produce besides the total log-likelihood.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EvalRequest {
    pub log_density: bool,
    pub responsibilities: bool,
    pub stats: bool,
    /// Points whose log-density is below this (or not a number) are scored but
    /// left out of the statistics (outliers then cannot bend the model).
    pub trim_below: Option<f64>,
    /// `Σ r ln r` of the responsibilities (before any trimming): the entropy term of
    /// the variational lower bound.
    pub resp_log_resp: bool,
}

impl EvalRequest {
    pub const NOTHING: Self = Self {
        log_density: false,
        responsibilities: false,
        stats: false,
        trim_below: None,
        resp_log_resp: false,
    };
    pub const LOG_DENSITY: Self = Self {
        log_density: true,
        ..Self::NOTHING
    };
    pub const RESPONSIBILITIES: Self = Self {
        responsibilities: true,
        ..Self::NOTHING
    };
    /// What a score record needs: log-densities and responsibilities.
    pub const SCORES: Self = Self {
        log_density: true,
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
        trim_below: None,
        resp_log_resp: false,
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
    /// `Σ_jk r_jk ln r_jk` (0 unless requested).
    pub resp_log_resp: f64,
}

impl Evaluation {
    /// Mean log-likelihood per point (NaN for no points).
    pub fn mean_log_likelihood(&self) -> f64 {
        self.log_likelihood / self.n_points as f64
    }
}

struct ChunkResult {
    log_likelihood: f64,
    resp_log_resp: f64,
    log_density: Vec<f64>,
    responsibilities: Vec<f64>,
    stats: Option<SufficientStats>,
}

pub(crate) fn evaluate(model: &GaussianMixture, x: Points<'_>, request: EvalRequest) -> Evaluation {
    let n = x.ncols();
    let k = model.n_components();
    let kernel = Kernel::new(model);
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let run = |&start: &usize| {
        let len = CHUNK.min(n - start);
        kernel.chunk(x.columns(start, len), request)
    };
    let chunks: Vec<ChunkResult> = if starts.len() > 1 {
        starts.par_iter().map(run).collect()
    } else {
        starts.iter().map(run).collect()
    };

    let mut out = Evaluation {
        log_likelihood: 0.0,
        resp_log_resp: 0.0,
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
        out.resp_log_resp += chunk.resp_log_resp;
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

/// Buffers reused by every block of a chunk.
#[derive(Default)]
struct Scratch {
    /// The block, coordinate-major: d rows of `bp`.
    xt: Vec<f64>,
    /// K rows of `bp`: weighted log-probabilities, then responsibilities.
    lp: Vec<f64>,
    /// ln p(x_j).
    lse: Vec<f64>,
    /// Centred points of one whitening tile.
    tile: Vec<f64>,
    /// Tied: the whitened block.
    z: Vec<f64>,
    /// Centred and weighted points for the statistics.
    work: Vec<f64>,
}

/// A model laid out for the kernels, built once per evaluation and shared by the
/// chunks.
struct Kernel<'a> {
    model: &'a GaussianMixture,
    /// Full: every L_k⁻¹ packed by rows ([`pack_lower_rows`]), one after another;
    /// tied: the shared one; empty otherwise.
    tri: Vec<f64>,
    #[cfg(target_arch = "x86_64")]
    avx2: Option<Avx2>,
}

impl<'a> Kernel<'a> {
    fn new(model: &'a GaussianMixture) -> Self {
        let mut tri = Vec::new();
        match &model.precision.factors {
            Factors::Full(inv) => inv.iter().for_each(|m| pack_lower_rows(m, &mut tri)),
            Factors::Tied(inv) => pack_lower_rows(inv, &mut tri),
            Factors::Diag(_) | Factors::Spherical(_) => {}
        }
        Self {
            model,
            tri,
            #[cfg(target_arch = "x86_64")]
            avx2: Avx2::detect(),
        }
    }

    fn chunk(&self, x: Points<'_>, request: EvalRequest) -> ChunkResult {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = self.avx2 {
            return self.chunk_with(avx2, x, request);
        }
        self.chunk_with(Portable, x, request)
    }

    fn chunk_with<S: Simd>(&self, s: S, x: Points<'_>, request: EvalRequest) -> ChunkResult {
        let model = self.model;
        let (d, n) = x.shape();
        let k_count = model.n_components();
        let mut result = ChunkResult {
            log_likelihood: 0.0,
            resp_log_resp: 0.0,
            log_density: Vec::with_capacity(if request.log_density { n } else { 0 }),
            responsibilities: Vec::with_capacity(if request.responsibilities {
                k_count * n
            } else {
                0
            }),
            stats: None,
        };
        let mut stats = request.stats.then(|| ChunkStats::new(model));
        let mut w = Scratch::default();
        for start in (0..n).step_by(BLOCK) {
            let b = BLOCK.min(n - start);
            let bp = padded(b);
            transpose_points(x.columns(start, b), bp, &mut w.xt);
            s.vectorize(
                #[inline(always)]
                || self.log_prob(s, d, bp, &mut w),
            );
            w.lse.resize(bp, 0.0);
            s.vectorize(
                #[inline(always)]
                || responsibilities(s, &mut w.lp, b, bp, &mut w.lse),
            );
            for &v in &w.lse[..b] {
                result.log_likelihood += v;
            }
            if request.resp_log_resp {
                result.resp_log_resp += s.vectorize(
                    #[inline(always)]
                    || resp_log_resp(s, &w.lp, bp),
                );
            }
            if request.log_density {
                result.log_density.extend_from_slice(&w.lse[..b]);
            }
            if request.responsibilities {
                for j in 0..b {
                    result
                        .responsibilities
                        .extend((0..k_count).map(|k| w.lp[k * bp + j]));
                }
            }
            if let Some(t) = request.trim_below {
                // Their responsibilities were copied out above; the statistics see 0.
                // A log-density that is NaN or -inf is below any threshold too.
                for j in (0..b).filter(|&j| w.lse[j].is_nan() || w.lse[j] < t) {
                    (0..k_count).for_each(|k| w.lp[k * bp + j] = 0.0);
                }
            }
            if let Some(stats) = stats.as_mut() {
                s.vectorize(
                    #[inline(always)]
                    || stats.absorb_block(s, &w.xt, bp, &w.lp, &mut w.work),
                );
            }
        }
        result.stats = stats.map(ChunkStats::finish);
        result
    }

    /// Fills `w.lp` (K rows of `bp`) with `ln π_k + ln N(x_j | μ_k, Σ_k)`.
    #[inline(always)]
    fn log_prob<S: Simd>(&self, s: S, d: usize, bp: usize, w: &mut Scratch) {
        let model = self.model;
        let k_count = model.n_components();
        // Every value is written by the kernels below.
        w.lp.resize(k_count * bp, 0.0);
        let means = model.means().as_slice();
        let log_norm = model.log_norm.as_slice();
        let rows = w.lp.chunks_exact_mut(bp).zip(means.chunks_exact(d));
        match &model.precision.factors {
            Factors::Full(_) => {
                let tri_len = d * (d + 1) / 2;
                for (((lp, mean), tri), &c) in
                    rows.zip(self.tri.chunks_exact(tri_len)).zip(log_norm)
                {
                    whitened_log_prob(s, tri, mean, c, &w.xt, bp, &mut w.tile, lp);
                }
            }
            Factors::Tied(_) => {
                // y_jk = L⁻¹(x_j − c) − L⁻¹(μ_k − c): one whitening per point.
                let centre = model.tied_centre.as_slice();
                whiten_points(s, &self.tri, centre, &w.xt, bp, &mut w.tile, &mut w.z);
                let offsets = model.tied_offsets.as_slice();
                for ((lp, _), (o, &c)) in rows.zip(offsets.chunks_exact(d).zip(log_norm)) {
                    offset_log_prob(s, &w.z, o, c, bp, lp);
                }
            }
            Factors::Diag(p) => {
                for ((lp, mean), (p, &c)) in rows.zip(p.as_slice().chunks_exact(d).zip(log_norm)) {
                    diag_log_prob(s, p, mean, c, &w.xt, bp, lp);
                }
            }
            Factors::Spherical(p) => {
                for ((lp, mean), (&p, &c)) in rows.zip(p.iter().zip(log_norm)) {
                    spherical_log_prob(s, p, mean, c, &w.xt, bp, lp);
                }
            }
        }
    }
}

/// A chunk's statistics, built from sums about a centre per component.
///
/// The centre starts at μ_k: the points were centred on it for the densities
/// already, and the shift from it to the weighted mean is exact (see
/// [`CentredSums`]). Before a block joins a component's open sums, the union is
/// checked ([`CentredSums::accurate_with`], from the block's first moments, before
/// its d² part is paid for). Where the shift would cancel more than a bit (a model far
/// from its data, a rough start, a component that only weighs a distant tail here),
/// the open sums are closed into the statistics (Chan's merge) and a new sum starts
/// with the block, about its own weighted mean if need be, which then stays the
/// centre. Every closed sum passed the check, so none loses more than a bit.
struct ChunkStats {
    stats: SufficientStats,
    full: bool,
    /// K×d, the centre of each component's open sums.
    centres: Vec<f64>,
    open: Vec<CentredSums>,
    /// One block's moments (diagonal form).
    block: CentredSums,
}

impl ChunkStats {
    fn new(model: &GaussianMixture) -> Self {
        let (d, k) = (model.n_features(), model.n_components());
        let cov_type = model.covariance_type();
        let full = matches!(cov_type, CovarianceType::Full | CovarianceType::Tied);
        Self {
            stats: SufficientStats::new(cov_type, k, d),
            full,
            centres: model.means().as_slice().to_vec(),
            open: vec![CentredSums::new(d, full); k],
            block: CentredSums::new(d, false),
        }
    }

    /// Adds a block of points (`xt`) weighted by the responsibilities (`resp`, K rows
    /// of `bp`).
    #[inline(always)]
    fn absorb_block<S: Simd>(
        &mut self,
        s: S,
        xt: &[f64],
        bp: usize,
        resp: &[f64],
        work: &mut Vec<f64>,
    ) {
        let d = self.stats.n_features();
        let full = self.full;
        for ((k, r), open) in resp.chunks_exact(bp).enumerate().zip(&mut self.open) {
            let centre = &mut self.centres[k * d..][..d];
            let block = &mut self.block;
            if !block_moments(s, xt, bp, centre, r, full, work, block) {
                continue;
            }
            if !open.accurate_with(block) {
                close(&mut self.stats, k, centre, open);
                if !block.shift_is_accurate() {
                    let n = block.n;
                    centre
                        .iter_mut()
                        .zip(&block.s)
                        .for_each(|(c, s)| *c += s / n);
                    block_moments(s, xt, bp, centre, r, full, work, block);
                }
            }
            open.add_moments(block);
            if full {
                add_block_scatter(s, work, d, bp, &mut open.scatter);
            }
        }
    }

    fn finish(mut self) -> SufficientStats {
        let d = self.stats.n_features();
        for (k, open) in self.open.iter_mut().enumerate() {
            close(&mut self.stats, k, &self.centres[k * d..][..d], open);
        }
        self.stats
    }
}

/// Merges sums about `centre` into component k's statistics, and empties them.
fn close(stats: &mut SufficientStats, k: usize, centre: &[f64], sums: &mut CentredSums) {
    if sums.n <= 0.0 {
        return;
    }
    stats.merge_centred(k, centre, sums);
    sums.clear();
}

/// The most responsible component of one point's responsibilities (the first of
/// equals, as numpy's argmax).
pub fn most_responsible(responsibilities: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in responsibilities.iter().enumerate() {
        if v > responsibilities[best] {
            best = i;
        }
    }
    best
}
