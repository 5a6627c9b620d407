//! The E-step: weighted log-probabilities, log-sum-exp, responsibilities, and the
//! sufficient statistics they weight, in one pass over the points.
//!
//! Points are processed in blocks of [`BLOCK`] columns (small enough that the centred
//! and weighted copies stay in cache), grouped in chunks of [`CHUNK`] that run in
//! parallel. Within a chunk, each component's statistics are sums about its mean μ_k
//! (the centring the densities needed anyway), turned into a weighted mean and a
//! scatter about it by the exact shift at the end of the chunk (see `CentredSums`). The chunking is fixed and chunk results merge in order, so the result is
//! bit-for-bit the same whatever the number of threads: a restarted daemon reproduces
//! an uninterrupted one exactly.

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use super::covariance::{CovarianceType, Factors};
#[cfg(target_arch = "x86_64")]
use super::linalg::Avx2;
use super::linalg::{
    accumulate_centred, diag_log_prob, offset_log_prob, pack_lower_rows, padded, responsibilities,
    spherical_log_prob, transpose_points, whiten_points, whitened_log_prob, CentredSums, Points,
    Portable, Simd,
};
use super::mixture::GaussianMixture;
use super::stats::{ComponentScatter, SufficientStats};

/// Points per block. The block (d×BLOCK), its centred and weighted copies for the
/// statistics stay in L1 up to d ≈ 20 at 64; measured (examples/estep_cpu, full
/// d = 16, K = 16) 64 beat 128 by 4 % and 256 by 15 %.
pub(crate) const BLOCK: usize = 64;
/// Points per parallel task: small enough that a daemon batch of 4096 points still
/// keeps two threads busy, large enough to amortise the per-chunk merge.
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
            log_density: Vec::with_capacity(if request.log_density { n } else { 0 }),
            responsibilities: Vec::with_capacity(if request.responsibilities {
                k_count * n
            } else {
                0
            }),
            stats: None,
        };
        let full = matches!(
            model.covariance_type(),
            CovarianceType::Full | CovarianceType::Tied
        );
        let mut sums: Vec<CentredSums> = if request.stats {
            vec![CentredSums::new(d, full); k_count]
        } else {
            Vec::new()
        };
        // The chunk's responsibilities, block after block, for the rare second pass.
        let mut chunk_resp = Vec::new();
        let means = model.means().as_slice();
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
            if request.stats {
                // Sums about μ_k: the points were centred on it for the densities
                // already, and the shift to the weighted mean is exact (CentredSums).
                s.vectorize(
                    #[inline(always)]
                    || {
                        for ((acc, r), mean) in sums
                            .iter_mut()
                            .zip(w.lp.chunks_exact(bp))
                            .zip(means.chunks_exact(d))
                        {
                            accumulate_centred(s, &w.xt, bp, mean, r, &mut w.work, acc);
                        }
                    },
                );
                chunk_resp.extend_from_slice(&w.lp);
            }
        }
        if request.stats {
            result.stats = Some(self.finish_stats(s, x, sums, &chunk_resp, &mut w));
        }
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

    /// The chunk's statistics from the sums about each μ_k.
    ///
    /// Where a component's weighted mean in this chunk is so far from μ_k that the
    /// shift would cancel more than a bit (a model far from its data, or a component
    /// that only weighs a distant tail here), its sums are formed again about the
    /// weighted mean itself, from the kept responsibilities.
    #[inline(always)]
    fn finish_stats<S: Simd>(
        &self,
        s: S,
        x: Points<'_>,
        sums: Vec<CentredSums>,
        chunk_resp: &[f64],
        w: &mut Scratch,
    ) -> SufficientStats {
        let model = self.model;
        let cov_type = model.covariance_type();
        let (d, n) = x.shape();
        let k_count = model.n_components();
        let mut stats = SufficientStats::new(cov_type, k_count, d);
        for ((k, mut acc), mean) in sums
            .into_iter()
            .enumerate()
            .zip(model.means().as_slice().chunks_exact(d))
        {
            if acc.n <= 0.0 {
                continue;
            }
            let mut centre = mean.to_vec();
            let mut delta = acc.delta();
            if !acc.shift_is_accurate(&delta) {
                centre.iter_mut().zip(&delta).for_each(|(c, dl)| *c += dl);
                acc.clear();
                let mut offset = 0;
                for start in (0..n).step_by(BLOCK) {
                    let b = BLOCK.min(n - start);
                    let bp = padded(b);
                    transpose_points(x.columns(start, b), bp, &mut w.xt);
                    let r = &chunk_resp[offset + k * bp..][..bp];
                    s.vectorize(
                        #[inline(always)]
                        || accumulate_centred(s, &w.xt, bp, &centre, r, &mut w.work, &mut acc),
                    );
                    offset += k_count * bp;
                }
                delta = acc.delta();
            }
            let mean = DVector::from_iterator(d, centre.iter().zip(&delta).map(|(c, dl)| c + dl));
            match cov_type {
                CovarianceType::Full | CovarianceType::Tied => {
                    let m2 = acc.full_scatter(&delta);
                    stats.merge_component(k, acc.n, &mean, ComponentScatter::Full(&m2));
                }
                CovarianceType::Diag => {
                    let m2 = acc.diag_scatter(&delta);
                    stats.merge_component(k, acc.n, &mean, ComponentScatter::Diag(m2));
                }
                CovarianceType::Spherical => {
                    let m2 = acc.diag_scatter(&delta).sum();
                    stats.merge_component(k, acc.n, &mean, ComponentScatter::Spherical(m2));
                }
            }
        }
        stats
    }
}
