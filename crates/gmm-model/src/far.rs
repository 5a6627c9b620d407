//! Points too far from the others to learn from, and coordinates too large to
//! compute with.
//!
//! A double keeps about 16 significant digits. A point [`FAR_SIGMAS`] = 10⁸ standard
//! deviations from a component would add 10¹⁶ times the component's own variance to
//! its scatter: absorbed, it leaves the covariance without a digit of the spread of
//! the points that belong there, and the M-step either fails (the whole batch lost)
//! or one component swallows the others. So the online estimator scores such a point
//! (its finite log-density says how unlikely it is) but never absorbs it:
//! - under a model, when it lies beyond `FAR_SIGMAS` standard deviations of every
//!   component ([`GaussianMixture::far_floor`]);
//! - before a model exists (the warm-up, or the refit after a change), when it lies
//!   beyond `FAR_SIGMAS` typical distances from the coordinate-wise median of the
//!   buffered points ([`gross_outliers`]).
//!
//! A point whose log-density is not finite cannot be scored at all: the estimator
//! leaves it out entirely and says so ([`Evaluation::unscorable`]), and callers
//! treat it as bad input.
//!
//! Coordinates beyond [`MAX_ABS_COORDINATE`] are refused outright: below it, squared
//! distances and their sums over any number of points and coordinates stay finite.

use nalgebra::DMatrix;

use super::estep::Evaluation;
use super::linalg::Points;
use super::mixture::GaussianMixture;

/// Standard deviations (or, before a model exists, typical distances) beyond which
/// a point is not absorbed.
pub const FAR_SIGMAS: f64 = 1e8;

/// The largest coordinate magnitude the estimator accepts. Squares stay below
/// 1e200, so sums of them over any realistic number of points and coordinates
/// cannot overflow.
pub const MAX_ABS_COORDINATE: f64 = 1e100;

impl GaussianMixture {
    /// A log-density below this means the point lies beyond [`FAR_SIGMAS`] standard
    /// deviations of every component.
    ///
    /// For every component k, `ln p(x) ≥ ln π_k + ln N(x | k) = c_k − ½ D_k²` (c_k the
    /// log-normaliser with the weight, D_k the Mahalanobis distance). If some D_k were
    /// within `FAR_SIGMAS`, `ln p(x)` would be at least `min_k c_k − ½ FAR_SIGMAS²`.
    pub fn far_floor(&self) -> f64 {
        self.log_norm.min() - 0.5 * FAR_SIGMAS * FAR_SIGMAS
    }
}

impl Evaluation {
    /// Indices of the points the model could not score finitely: a log-density or a
    /// responsibility that is not a finite number. Needs the log-densities requested.
    pub fn unscorable(&self) -> Vec<usize> {
        let k = self.responsibilities.nrows();
        (0..self.log_density.len())
            .filter(|&j| {
                !self.log_density[j].is_finite()
                    || (k > 0
                        && self
                            .responsibilities
                            .column(j)
                            .iter()
                            .any(|r| !r.is_finite()))
            })
            .collect()
    }

    /// The evaluation of the points at `keep` only (log-densities and
    /// responsibilities; statistics are dropped).
    pub fn select(&self, keep: &[usize]) -> Evaluation {
        let k = self.responsibilities.nrows();
        let log_density: Vec<f64> = keep
            .iter()
            .filter_map(|&j| self.log_density.get(j).copied())
            .collect();
        let responsibilities = if k > 0 {
            self.responsibilities.select_columns(keep)
        } else {
            DMatrix::zeros(0, 0)
        };
        Evaluation {
            log_likelihood: log_density.iter().sum(),
            n_points: keep.len(),
            log_density,
            responsibilities,
            stats: None,
            // Not requested of a selection.
            resp_log_resp: 0.0,
        }
    }
}

/// The index of the first coordinate beyond [`MAX_ABS_COORDINATE`], if any.
pub fn first_out_of_range(values: impl IntoIterator<Item = f64>) -> Option<(usize, f64)> {
    values
        .into_iter()
        .enumerate()
        .find(|(_, v)| v.abs() > MAX_ABS_COORDINATE)
}

/// Which points lie beyond [`FAR_SIGMAS`] typical distances from the coordinate-wise
/// median of `x`, the typical distance being the median distance of the points that
/// are not at the median itself. None when no point is that far (so callers can
/// keep working on `x` itself).
pub fn gross_outliers(x: Points<'_>) -> Option<Vec<bool>> {
    let (d, n) = x.shape();
    if n < 3 {
        return None;
    }
    let mut column = Vec::with_capacity(n);
    let median: Vec<f64> = (0..d)
        .map(|i| {
            column.clear();
            column.extend(x.row(i).iter().copied());
            upper_median(&mut column)
        })
        .collect();
    let distance: Vec<f64> = x
        .column_iter()
        .map(|p| {
            p.iter()
                .zip(&median)
                .map(|(v, m)| (v - m) * (v - m))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let mut moved: Vec<f64> = distance.iter().copied().filter(|&r| r > 0.0).collect();
    if moved.is_empty() {
        return None;
    }
    let limit = FAR_SIGMAS * upper_median(&mut moved);
    let far: Vec<bool> = distance.iter().map(|&r| r.is_nan() || r > limit).collect();
    far.contains(&true).then_some(far)
}

/// The points of `x` whose flag is false, as a new matrix.
pub(crate) fn without(x: Points<'_>, flagged: &[bool]) -> DMatrix<f64> {
    let keep: Vec<usize> = (0..x.ncols()).filter(|&j| !flagged[j]).collect();
    x.select_columns(&keep)
}

/// The upper median, reordering `v` (not empty).
fn upper_median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

#[cfg(test)]
mod tests {
    use nalgebra::{DMatrix, DVector};

    use super::*;
    use crate::covariance::Covariances;
    use crate::estep::EvalRequest;

    fn cloud(extra: &[[f64; 2]]) -> DMatrix<f64> {
        let mut cols: Vec<f64> = (0..300)
            .flat_map(|j| {
                let c = (j % 3) as f64 * 6.0;
                [
                    c + ((j * 7) % 11) as f64 / 11.0,
                    ((j * 5) % 13) as f64 / 13.0,
                ]
            })
            .collect();
        for p in extra {
            cols.extend_from_slice(p);
        }
        DMatrix::from_column_slice(2, cols.len() / 2, &cols)
    }

    #[test]
    fn huge_points_are_gross_outliers_of_a_buffer_and_normal_ones_are_not() {
        assert_eq!(gross_outliers(cloud(&[]).as_view()), None);
        assert_eq!(gross_outliers(cloud(&[[1e6, 1e6]]).as_view()), None);
        let flags =
            gross_outliers(cloud(&[[1e20, 1e20], [3.0, -1e12]]).as_view()).expect("two far points");
        assert_eq!(flags.iter().filter(|&&f| f).count(), 2);
        assert!(flags[300] && flags[301]);
        // All points equal: nothing has a typical distance, nothing is screened.
        let same = DMatrix::from_element(2, 10, 4.0);
        assert_eq!(gross_outliers(same.as_view()), None);
    }

    #[test]
    fn far_floor_separates_points_beyond_the_limit_from_every_component() {
        let model = GaussianMixture::new(
            DVector::from_vec(vec![0.5, 0.5]),
            DMatrix::from_column_slice(2, 2, &[0.0, 0.0, 10.0, 0.0]),
            Covariances::Full(vec![DMatrix::identity(2, 2); 2]),
        )
        .expect("valid");
        let x = DMatrix::from_column_slice(2, 3, &[1e3, 0.0, 1e20, 1e20, 5e7, 0.0]);
        let ld = model.score_samples(x.as_view()).expect("scores");
        let floor = model.far_floor();
        assert!(ld[0] > floor && ld[2] > floor, "{ld:?} vs {floor}");
        assert!(ld[1] < floor && ld[1].is_finite());
    }

    #[test]
    fn points_whose_log_density_overflows_are_unscorable() {
        let model = GaussianMixture::new(
            DVector::from_vec(vec![1.0]),
            DMatrix::zeros(2, 1),
            Covariances::Diag(DMatrix::from_element(2, 1, 1e-150)),
        )
        .expect("valid");
        let x = DMatrix::from_column_slice(2, 3, &[0.0, 0.0, 1e99, 1e99, 1.0, 1.0]);
        let eval = model
            .evaluate(x.as_view(), EvalRequest::SCORES)
            .expect("evaluates");
        assert_eq!(eval.unscorable(), vec![1]);
        let kept = eval.select(&[0, 2]);
        assert_eq!(
            kept.log_density,
            vec![eval.log_density[0], eval.log_density[2]]
        );
        assert_eq!(kept.responsibilities.ncols(), 2);
        assert_eq!(first_out_of_range([1.0, -1e101, 2.0]), Some((1, -1e101)));
        assert_eq!(first_out_of_range([1.0, 1e100]), None);
    }
}
