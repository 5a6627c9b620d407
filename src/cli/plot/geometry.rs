//! The mathematics of the pictures: the plane a model is drawn on, the ellipses of
//! its covariances, one-dimensional densities and histograms. No drawing here.

use gmm_model::{GaussianMixture, Points};
use nalgebra::{DMatrix, DVector, Matrix2, SymmetricEigen};

/// A plane of the feature space: a point x is drawn at `basis · (x − origin)`, where
/// the rows of the 2×d `basis` are orthonormal.
pub struct Plane {
    basis: DMatrix<f64>,
    origin: DVector<f64>,
    /// How the two axes are labelled.
    pub axis_names: [String; 2],
    /// A phrase for captions ("first two coordinates", "principal components of ...").
    pub description: String,
}

impl Plane {
    /// The first two coordinates, named by `names` (the `--fields` of the data) when
    /// they are known.
    pub fn first_two(d: usize, names: Option<&[String]>) -> Self {
        let basis = DMatrix::from_fn(2, d, |i, j| if i == j { 1.0 } else { 0.0 });
        let name = |i: usize| {
            names
                .and_then(|n| n.get(i).cloned())
                .unwrap_or_else(|| format!("x{}", i + 1))
        };
        Self {
            basis,
            origin: DVector::zeros(d),
            axis_names: [name(0), name(1)],
            description: "the first two coordinates".to_owned(),
        }
    }

    /// The plane of the two largest principal components of a distribution with this
    /// mean and covariance, centred on the mean; `source` says whose distribution.
    pub fn principal(mean: DVector<f64>, cov: &DMatrix<f64>, source: &str) -> Self {
        let eigen = SymmetricEigen::new(cov.clone());
        let mut order: Vec<usize> = (0..eigen.eigenvalues.len()).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let total: f64 = eigen.eigenvalues.iter().map(|v| v.max(0.0)).sum();
        let mut basis = DMatrix::zeros(2, mean.len());
        let mut axis_names = [String::new(), String::new()];
        for (row, &i) in order.iter().take(2).enumerate() {
            let v = canonical_sign(eigen.eigenvectors.column(i).into_owned());
            basis.row_mut(row).copy_from(&v.transpose());
            let share = eigen.eigenvalues[i].max(0.0) / total;
            axis_names[row] = if share.is_finite() {
                format!("PC{} ({:.1} % of the variance)", row + 1, 100.0 * share)
            } else {
                format!("PC{}", row + 1)
            };
        }
        Self {
            basis,
            origin: mean,
            axis_names,
            description: format!("the two principal components of {source}"),
        }
    }

    pub fn point(&self, x: &[f64]) -> (f64, f64) {
        let y = &self.basis * (DVector::from_column_slice(x) - &self.origin);
        (y[0], y[1])
    }

    /// A covariance seen on the plane: `P Σ Pᵀ`.
    pub fn covariance(&self, cov: &DMatrix<f64>) -> Matrix2<f64> {
        let c = &self.basis * cov * self.basis.transpose();
        Matrix2::new(c[(0, 0)], c[(0, 1)], c[(1, 0)], c[(1, 1)])
    }
}

/// Eigenvectors are defined up to sign; fixing it (largest coordinate positive)
/// keeps the picture from mirroring between runs and versions.
fn canonical_sign(v: DVector<f64>) -> DVector<f64> {
    match v.iter().copied().max_by(|a, b| a.abs().total_cmp(&b.abs())) {
        Some(x) if x < 0.0 => -v,
        _ => v,
    }
}

/// The mean and covariance of the whole mixture: `μ̄ = Σ π_k μ_k` and
/// `Σ̄ = Σ π_k (Σ_k + (μ_k − μ̄)(μ_k − μ̄)ᵀ)`, which equals
/// `Σ π_k (Σ_k + μ_k μ_kᵀ) − μ̄ μ̄ᵀ` without its cancellation far from the origin.
pub fn mixture_moments(model: &GaussianMixture) -> (DVector<f64>, DMatrix<f64>) {
    let d = model.n_features();
    let mean = model.means() * model.weights();
    let mut cov = DMatrix::zeros(d, d);
    for (k, &w) in model.weights().iter().enumerate() {
        let offset = model.means().column(k) - &mean;
        cov += (model.covariances().component_matrix(k, d) + &offset * offset.transpose()) * w;
    }
    (mean, cov)
}

/// The sample mean and (maximum-likelihood) covariance of points (columns).
pub fn sample_moments(x: Points<'_>) -> (DVector<f64>, DMatrix<f64>) {
    let n = x.ncols().max(1) as f64;
    let mean = x.column_sum() / n;
    let centred = DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - mean[i]);
    let cov = &centred * centred.transpose() / n;
    (mean, cov)
}

/// The closed curve `{c + r·L·u : |u| = 1}` for `cov = L Lᵀ`: the points at
/// Mahalanobis distance `radius` from `center`. Built from the eigen-decomposition
/// (semi-axes `r·√λ_i` along the eigenvectors); `vertices` segments, the first
/// point repeated at the end.
pub fn ellipse(
    center: (f64, f64),
    cov: &Matrix2<f64>,
    radius: f64,
    vertices: usize,
) -> Vec<(f64, f64)> {
    let eigen = SymmetricEigen::new(*cov);
    // Rounding can leave a flat ellipse's small eigenvalue a hair below zero.
    let axes: Vec<_> = (0..2)
        .map(|i| eigen.eigenvectors.column(i) * (radius * eigen.eigenvalues[i].max(0.0).sqrt()))
        .collect();
    let mut points: Vec<(f64, f64)> = (0..vertices)
        .map(|i| {
            let t = std::f64::consts::TAU * i as f64 / vertices as f64;
            let p = axes[0] * t.cos() + axes[1] * t.sin();
            (center.0 + p[0], center.1 + p[1])
        })
        .collect();
    // Closed exactly: cos and sin of 2π are not exactly those of 0.
    points.extend(points.first().copied());
    points
}

/// The normal density with this mean and variance.
pub fn normal_pdf(x: f64, mean: f64, variance: f64) -> f64 {
    let z = x - mean;
    (-0.5 * z * z / variance).exp() / (std::f64::consts::TAU * variance).sqrt()
}

/// A histogram normalised as a density (bar areas sum to 1): `(left, right, height)`
/// per bin, `bins` equal bins over the values' range.
pub fn histogram(values: &[f64], bins: usize) -> Vec<(f64, f64, f64)> {
    let Some(range) = Range::of(values.iter().copied()) else {
        return Vec::new();
    };
    let range = range.widened_if_empty();
    let width = range.span() / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values {
        let i = ((v - range.lo) / width) as usize;
        counts[i.min(bins - 1)] += 1;
    }
    let norm = values.len() as f64 * width;
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let left = range.lo + i as f64 * width;
            (left, left + width, c as f64 / norm)
        })
        .collect()
}

/// The square-root rule, bounded so that bars stay readable and not too coarse.
pub fn histogram_bins(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).clamp(10, 60)
}

/// An interval of values (an axis's extent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
}

impl Range {
    /// The smallest interval holding every finite value; None without any.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(None, |r: Option<Self>, v| {
                Some(match r {
                    None => Self { lo: v, hi: v },
                    Some(r) => Self {
                        lo: r.lo.min(v),
                        hi: r.hi.max(v),
                    },
                })
            })
    }

    pub fn union(self, other: Option<Self>) -> Self {
        match other {
            Some(o) => Self {
                lo: self.lo.min(o.lo),
                hi: self.hi.max(o.hi),
            },
            None => self,
        }
    }

    pub fn span(&self) -> f64 {
        self.hi - self.lo
    }

    /// A single value becomes an interval about it, so that axes and bins have width.
    pub fn widened_if_empty(self) -> Self {
        if self.span() > 0.0 {
            return self;
        }
        let half = (self.lo.abs() * 0.1).max(1.0);
        Self {
            lo: self.lo - half,
            hi: self.hi + half,
        }
    }

    /// With a margin of `fraction` of the span on both sides, so that nothing sits on
    /// an axis.
    pub fn padded(self, fraction: f64) -> Self {
        let r = self.widened_if_empty();
        let pad = r.span() * fraction;
        Self {
            lo: r.lo - pad,
            hi: r.hi + pad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmm_model::{points_from_rows, Covariances};

    fn mixture(weights: &[f64], means: &[f64], covs: Vec<DMatrix<f64>>) -> GaussianMixture {
        let d = covs[0].nrows();
        GaussianMixture::new(
            DVector::from_column_slice(weights),
            DMatrix::from_column_slice(d, weights.len(), means),
            Covariances::Full(covs),
        )
        .expect("a valid mixture")
    }

    #[test]
    fn ellipse_points_lie_at_the_given_mahalanobis_distance() {
        let cov = Matrix2::new(4.0, 1.5, 1.5, 1.0);
        let inv = cov.try_inverse().expect("invertible");
        for radius in [1.0, 2.0] {
            let pts = ellipse((3.0, -1.0), &cov, radius, 64);
            assert_eq!(pts.len(), 65);
            assert_eq!(pts[0], pts[64], "closed");
            for (x, y) in pts {
                let z = nalgebra::Vector2::new(x - 3.0, y + 1.0);
                let m = (z.transpose() * inv * z)[0].sqrt();
                assert!((m - radius).abs() < 1e-12, "{m} vs {radius}");
            }
        }
    }

    #[test]
    fn a_singular_covariance_draws_a_segment() {
        let pts = ellipse((0.0, 0.0), &Matrix2::new(1.0, 1.0, 1.0, 1.0), 1.0, 8);
        assert!(pts
            .iter()
            .all(|(x, y)| (x - y).abs() < 1e-12 && x.is_finite()));
    }

    #[test]
    fn mixture_moments_agree_with_the_textbook_formula() {
        let a = DMatrix::from_row_slice(3, 3, &[2.0, 0.3, 0.0, 0.3, 1.0, 0.2, 0.0, 0.2, 0.5]);
        let b = DMatrix::from_diagonal(&DVector::from_column_slice(&[0.1, 3.0, 1.0]));
        let model = mixture(&[0.3, 0.7], &[1.0, 2.0, 3.0, -4.0, 0.5, 10.0], vec![a, b]);
        let (mean, cov) = mixture_moments(&model);
        let mut raw = DMatrix::zeros(3, 3);
        for k in 0..2 {
            let mu = model.means().column(k);
            let second = model.covariances().component_matrix(k, 3) + mu * mu.transpose();
            raw += second * model.weights()[k];
        }
        let expected = raw - &mean * mean.transpose();
        assert!((cov - expected).abs().max() < 1e-12);
        assert!((mean[0] - (0.3 - 2.8)).abs() < 1e-12);
    }

    #[test]
    fn the_principal_plane_follows_the_largest_variances() {
        // Variances 9, 4, 1 along the axes 3, 1, 2.
        let cov = DMatrix::from_diagonal(&DVector::from_column_slice(&[4.0, 1.0, 9.0]));
        let plane = Plane::principal(DVector::from_column_slice(&[1.0, 1.0, 1.0]), &cov, "x");
        assert_eq!(plane.point(&[1.0, 1.0, 3.0]), (2.0, 0.0));
        assert_eq!(plane.point(&[2.0, 5.0, 1.0]), (0.0, 1.0));
        assert_eq!(plane.axis_names[0], "PC1 (64.3 % of the variance)");
        let projected = plane.covariance(&cov);
        assert_eq!(projected, Matrix2::new(9.0, 0.0, 0.0, 4.0));
    }

    #[test]
    fn the_principal_axes_of_a_sample_are_its_main_directions() {
        // Points along the diagonal of the first two coordinates, little elsewhere.
        let rows: Vec<f64> = (0..100)
            .flat_map(|i| {
                let t = f64::from(i) - 50.0;
                [
                    t,
                    t + 0.1 * (f64::from(i % 3) - 1.0),
                    0.01 * f64::from(i % 2),
                ]
            })
            .collect();
        let x = points_from_rows(&rows, 3).expect("points");
        let (mean, cov) = sample_moments(x);
        assert!(mean[0].abs() < 1.0);
        let plane = Plane::principal(mean, &cov, "the data");
        let (u, v) = plane.point(&[10.0, 10.0, 0.0]);
        assert!(u > 14.0 && v.abs() < 0.5, "{u} {v}");
    }

    #[test]
    fn first_two_names_its_axes_after_the_fields() {
        let names = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let plane = Plane::first_two(3, Some(&names));
        assert_eq!(plane.axis_names, ["a", "b"]);
        assert_eq!(plane.point(&[1.0, 2.0, 3.0]), (1.0, 2.0));
        assert_eq!(Plane::first_two(2, None).axis_names, ["x1", "x2"]);
    }

    #[test]
    fn a_density_histogram_has_unit_area() {
        let values: Vec<f64> = (0..1000).map(|i| (f64::from(i) * 0.37).sin()).collect();
        let bars = histogram(&values, histogram_bins(values.len()));
        assert_eq!(bars.len(), 32);
        let area: f64 = bars.iter().map(|(l, r, h)| (r - l) * h).sum();
        assert!((area - 1.0).abs() < 1e-12);
        assert_eq!(
            histogram(&[2.0, 2.0], 10).len(),
            10,
            "a single value still has bins"
        );
    }

    #[test]
    fn normal_pdf_is_the_gaussian() {
        assert!((normal_pdf(0.0, 0.0, 1.0) - 0.398_942_280_401_432_7).abs() < 1e-15);
        assert!((normal_pdf(3.0, 1.0, 4.0) - 0.120_985_362_259_571_6).abs() < 1e-15);
    }
}
