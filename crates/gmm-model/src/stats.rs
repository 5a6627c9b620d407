//! Decayed sufficient statistics of a mixture, kept centred.
//!
//! Per component k: the weight `n_k = Σ r`, the weighted mean `m_k` and the scatter
//! `M2_k = Σ r (x − m_k)(x − m_k)ᵀ` (only its diagonal for `diag`, only its trace for
//! `spherical`, and only the sum over components for `tied`). Keeping the scatter
//! about the mean, rather than `Σ r x xᵀ − n m mᵀ`, avoids the catastrophic
//! cancellation that loses every digit for data far from the origin.
//!
//! Two statistics merge exactly (Chan, Golub and LeVeque 1979):
//! `n = na + nb`, `δ = mb − ma`, `m = ma + δ nb / n`, `M2 = M2a + M2b + δδᵀ na nb / n`.
//! Decay by a factor multiplies `n` and `M2` and leaves the mean alone.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::block_stats::{add_block_scatter, block_moments, CentredSums};
use super::checked_serde;
use super::covariance::CovarianceType;
use super::error::{finite_at_least, ModelError, Result};
use super::kernels::transpose_points;
use super::linalg::{add_scaled_outer, Points};
use super::simd::{padded, Portable};

/// The scatter part of the statistics, in the layout of the covariance type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Scatter {
    Full(#[serde(with = "checked_serde::matrices")] Vec<DMatrix<f64>>),
    /// d×K, the diagonals.
    Diag(#[serde(with = "checked_serde::matrix")] DMatrix<f64>),
    /// The traces.
    Spherical(#[serde(with = "checked_serde::vector")] DVector<f64>),
    /// The sum of all components' scatters.
    Tied(#[serde(with = "checked_serde::matrix")] DMatrix<f64>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SufficientStats {
    #[serde(with = "checked_serde::vector")]
    weights: DVector<f64>,
    /// d×K, column k is the weighted mean of component k.
    #[serde(with = "checked_serde::matrix")]
    means: DMatrix<f64>,
    scatter: Scatter,
}

impl SufficientStats {
    /// Empty statistics: no weight anywhere.
    pub fn new(covariance_type: CovarianceType, n_components: usize, n_features: usize) -> Self {
        let (k, d) = (n_components, n_features);
        let scatter = match covariance_type {
            CovarianceType::Full => Scatter::Full(vec![DMatrix::zeros(d, d); k]),
            CovarianceType::Diag => Scatter::Diag(DMatrix::zeros(d, k)),
            CovarianceType::Spherical => Scatter::Spherical(DVector::zeros(k)),
            CovarianceType::Tied => Scatter::Tied(DMatrix::zeros(d, d)),
        };
        Self {
            weights: DVector::zeros(k),
            means: DMatrix::zeros(d, k),
            scatter,
        }
    }

    pub fn n_components(&self) -> usize {
        self.weights.len()
    }

    pub fn n_features(&self) -> usize {
        self.means.nrows()
    }

    pub fn covariance_type(&self) -> CovarianceType {
        match self.scatter {
            Scatter::Full(_) => CovarianceType::Full,
            Scatter::Diag(_) => CovarianceType::Diag,
            Scatter::Spherical(_) => CovarianceType::Spherical,
            Scatter::Tied(_) => CovarianceType::Tied,
        }
    }

    /// `n_k` for every component.
    pub fn weights(&self) -> &DVector<f64> {
        &self.weights
    }

    /// d×K weighted means.
    pub fn means(&self) -> &DMatrix<f64> {
        &self.means
    }

    pub fn scatter(&self) -> &Scatter {
        &self.scatter
    }

    /// `Σ n_k`.
    pub fn total_weight(&self) -> f64 {
        self.weights.sum()
    }

    /// Rebuilds statistics from their parts, checking shapes and values (used when a
    /// snapshot is restored).
    pub fn from_parts(
        weights: DVector<f64>,
        means: DMatrix<f64>,
        scatter: Scatter,
    ) -> Result<Self> {
        let s = Self {
            weights,
            means,
            scatter,
        };
        s.check()?;
        Ok(s)
    }

    /// Shapes that agree and values that make sense (a restored snapshot's).
    pub(crate) fn check(&self) -> Result<()> {
        let (k, d) = (self.n_components(), self.n_features());
        let shape_ok = self.means.ncols() == k
            && match &self.scatter {
                Scatter::Full(m) => m.len() == k && m.iter().all(|s| s.shape() == (d, d)),
                Scatter::Diag(m) => m.shape() == (d, k),
                Scatter::Spherical(v) => v.len() == k,
                Scatter::Tied(m) => m.shape() == (d, d),
            };
        if !shape_ok {
            return Err(ModelError::IncompatibleStats(format!(
                "statistics shapes do not agree with K = {k}, d = {d}"
            )));
        }
        if self.weights.iter().any(|&w| !finite_at_least(w, 0.0)) {
            return Err(ModelError::IncompatibleStats(
                "statistics weights must be finite and non-negative".into(),
            ));
        }
        if !self.means.iter().all(|x| x.is_finite()) || !self.scatter_values_finite() {
            return Err(ModelError::NonFinite {
                what: "sufficient statistics".into(),
            });
        }
        Ok(())
    }

    fn scatter_values_finite(&self) -> bool {
        match &self.scatter {
            Scatter::Full(m) => m.iter().all(|s| s.iter().all(|x| x.is_finite())),
            Scatter::Diag(m) | Scatter::Tied(m) => m.iter().all(|x| x.is_finite()),
            Scatter::Spherical(v) => v.iter().all(|x| x.is_finite()),
        }
    }

    /// Multiplies every weight and scatter by `factor` (forgetting): a statistic of
    /// weight n becomes one of weight `factor · n` with the same mean and covariance.
    pub fn scale(&mut self, factor: f64) {
        self.weights *= factor;
        match &mut self.scatter {
            Scatter::Full(m) => m.iter_mut().for_each(|s| *s *= factor),
            Scatter::Diag(m) | Scatter::Tied(m) => *m *= factor,
            Scatter::Spherical(v) => *v *= factor,
        }
    }

    /// Merges `other` into `self`: afterwards `self` describes the union of both.
    pub fn merge(&mut self, other: &SufficientStats) -> Result<()> {
        if self.covariance_type() != other.covariance_type()
            || self.n_components() != other.n_components()
            || self.n_features() != other.n_features()
        {
            return Err(ModelError::IncompatibleStats(format!(
                "cannot merge {} K={} d={} statistics into {} K={} d={}",
                other.covariance_type(),
                other.n_components(),
                other.n_features(),
                self.covariance_type(),
                self.n_components(),
                self.n_features()
            )));
        }
        if let (Scatter::Tied(a), Scatter::Tied(b)) = (&mut self.scatter, &other.scatter) {
            *a += b;
        }
        for k in 0..other.n_components() {
            let part = match &other.scatter {
                Scatter::Full(m) => ComponentScatter::Full(&m[k]),
                Scatter::Diag(m) => ComponentScatter::Diag(m.column(k).into_owned()),
                Scatter::Spherical(v) => ComponentScatter::Spherical(v[k]),
                Scatter::Tied(_) => ComponentScatter::PooledElsewhere,
            };
            let mean = other.means.column(k).into_owned();
            self.merge_component(k, other.weights[k], &mean, part);
        }
        Ok(())
    }

    /// Merges `sums`, accumulated about `centre`, into component k, in the form
    /// its covariance type keeps.
    pub(crate) fn merge_centred(&mut self, k: usize, centre: &[f64], sums: &CentredSums) {
        let delta = sums.delta();
        let mean = DVector::from_iterator(
            centre.len(),
            centre.iter().zip(&delta).map(|(c, dl)| c + dl),
        );
        match self.covariance_type() {
            CovarianceType::Full | CovarianceType::Tied => {
                let m2 = sums.full_scatter(&delta);
                self.merge_component(k, sums.n, &mean, ComponentScatter::Full(&m2));
            }
            CovarianceType::Diag => {
                let m2 = sums.diag_scatter(&delta);
                self.merge_component(k, sums.n, &mean, ComponentScatter::Diag(m2));
            }
            CovarianceType::Spherical => {
                let m2 = sums.diag_scatter(&delta).sum();
                self.merge_component(k, sums.n, &mean, ComponentScatter::Spherical(m2));
            }
        }
    }

    /// Chan's merge of one component's (weight, mean, scatter) into component `k`.
    pub(crate) fn merge_component(
        &mut self,
        k: usize,
        nb: f64,
        mean_b: &DVector<f64>,
        scatter_b: ComponentScatter<'_>,
    ) {
        if nb <= 0.0 {
            return;
        }
        let na = self.weights[k];
        let n = na + nb;
        let delta = mean_b - self.means.column(k);
        // When one side is empty the cross term vanishes and the mean is the other's.
        let cross = if na > 0.0 { na * nb / n } else { 0.0 };
        let mut mean_k = self.means.column_mut(k);
        if na > 0.0 {
            mean_k.axpy(nb / n, &delta, 1.0);
        } else {
            mean_k.copy_from(mean_b);
        }
        self.weights[k] = n;
        match (&mut self.scatter, scatter_b) {
            (Scatter::Full(m), ComponentScatter::Full(sb)) => {
                m[k] += sb;
                add_scaled_outer(&mut m[k], cross, &delta);
            }
            (Scatter::Diag(m), ComponentScatter::Diag(sb)) => {
                let mut col = m.column_mut(k);
                col += sb;
                col.zip_apply(&delta, |c, dl| *c += cross * dl * dl);
            }
            (Scatter::Spherical(v), ComponentScatter::Spherical(sb)) => {
                v[k] += sb + cross * delta.norm_squared();
            }
            (Scatter::Tied(m), ComponentScatter::Full(sb)) => {
                *m += sb;
                add_scaled_outer(m, cross, &delta);
            }
            (Scatter::Tied(m), ComponentScatter::PooledElsewhere) => {
                add_scaled_outer(m, cross, &delta);
            }
            _ => unreachable!("scatter layouts are matched by covariance type"),
        }
    }

    /// Absorbs the points of a block with their responsibilities.
    ///
    /// `resp` is K×B column-major (column j holds point j's responsibilities). Each
    /// component's block statistics are formed about a first estimate of the block's
    /// weighted mean, corrected by the exact shift (see [`CentredSums`]), then merged.
    /// `scratch` is reused between calls.
    pub(crate) fn absorb_block(&mut self, x: Points<'_>, resp: &[f64], scratch: &mut Vec<f64>) {
        let (k_count, (d, b)) = (self.n_components(), x.shape());
        debug_assert_eq!(resp.len(), k_count * b);
        let cov_type = self.covariance_type();
        let bp = padded(b);
        let mut xt = Vec::new();
        transpose_points(x, bp, &mut xt);
        let mut r = vec![0.0; bp];
        let mut sums = CentredSums::new(
            d,
            matches!(cov_type, CovarianceType::Full | CovarianceType::Tied),
        );
        let mut moments = CentredSums::new(d, false);
        for k in 0..k_count {
            for (j, rj) in r[..b].iter_mut().enumerate() {
                *rj = resp[k + j * k_count];
            }
            let nb = r.iter().sum::<f64>();
            if nb <= 0.0 {
                continue;
            }
            // Not centred, so only good to about ε·|x|; the shift below restores the
            // digits it loses far from the origin.
            let pilot = (x * DVector::from_column_slice(&r[..b])) / nb;
            let full = sums.full;
            if !block_moments(
                Portable,
                &xt,
                bp,
                pilot.as_slice(),
                &r,
                full,
                scratch,
                &mut moments,
            ) {
                continue;
            }
            sums.clear();
            sums.add_moments(&moments);
            if full {
                add_block_scatter(Portable, scratch, d, bp, &mut sums.scatter);
            }
            self.merge_centred(k, pilot.as_slice(), &sums);
        }
    }

    /// Statistics of points with given responsibilities (K×n, column per point).
    pub fn from_responsibilities(
        covariance_type: CovarianceType,
        x: Points<'_>,
        resp: &DMatrix<f64>,
    ) -> Result<Self> {
        if resp.ncols() != x.ncols() {
            return Err(ModelError::InvalidShape(format!(
                "{} responsibility columns for {} points",
                resp.ncols(),
                x.ncols()
            )));
        }
        let mut stats = Self::new(covariance_type, resp.nrows(), x.nrows());
        let mut scratch = Vec::new();
        let block = super::block_stats::BLOCK;
        let k = resp.nrows();
        for start in (0..x.ncols()).step_by(block) {
            let end = (start + block).min(x.ncols());
            let cols = x.columns(start, end - start);
            stats.absorb_block(cols, &resp.as_slice()[start * k..end * k], &mut scratch);
        }
        Ok(stats)
    }
}

/// One component's block scatter, borrowed where it is a matrix.
pub(crate) enum ComponentScatter<'a> {
    Full(&'a DMatrix<f64>),
    Diag(DVector<f64>),
    Spherical(f64),
    /// Tied statistics pool the scatter; only the mean correction is per component.
    PooledElsewhere,
}
