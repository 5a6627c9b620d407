//! The rules every decoded point must pass, whatever its format: the right number of
//! coordinates, all finite.

use gmm_model::MAX_ABS_COORDINATE;

use crate::reject::{Reject, RejectReason};

/// The dimension points must have (configured, learned from the first accepted
/// point, or not known yet) and the largest coordinate magnitude accepted.
#[derive(Debug, Clone)]
pub(super) struct Shape {
    dim: Option<usize>,
    max_abs: f64,
}

impl Shape {
    pub(super) fn new(dim: Option<usize>) -> Self {
        Shape {
            dim,
            max_abs: MAX_ABS_COORDINATE,
        }
    }

    /// Refuses coordinates whose magnitude exceeds `max_abs` (at most
    /// [`MAX_ABS_COORDINATE`], the estimator's own limit).
    pub(super) fn set_max_abs(&mut self, max_abs: f64) {
        self.max_abs = max_abs.min(MAX_ABS_COORDINATE);
    }

    pub(super) fn max_abs(&self) -> f64 {
        self.max_abs
    }

    pub(super) fn dim(&self) -> Option<usize> {
        self.dim
    }

    /// Keeps the point just written at `out[start..]` if it is acceptable; otherwise
    /// removes it and says why. The first kept point fixes an unknown dimension.
    pub(super) fn settle(&mut self, out: &mut Vec<f64>, start: usize) -> Result<(), Reject> {
        let point = out.get(start..).unwrap_or_default();
        let verdict = self.check(point);
        match verdict {
            Ok(()) => {
                self.dim.get_or_insert(point.len());
            }
            Err(_) => out.truncate(start),
        }
        verdict
    }

    /// Appends the coordinates as one point and settles it; the first coordinate
    /// that is not a number refuses the point.
    pub(super) fn push_point(
        &mut self,
        out: &mut Vec<f64>,
        coordinates: impl IntoIterator<Item = Result<f64, Reject>>,
    ) -> Result<(), Reject> {
        let start = out.len();
        for coordinate in coordinates {
            match coordinate {
                Ok(value) => out.push(value),
                Err(reject) => {
                    out.truncate(start);
                    return Err(reject);
                }
            }
        }
        self.settle(out, start)
    }

    fn check(&self, point: &[f64]) -> Result<(), Reject> {
        match self.dim {
            Some(dim) if dim != point.len() => return Err(wrong_dimension(point.len(), dim)),
            None if point.is_empty() => {
                return Err(Reject::new(
                    RejectReason::Dimension,
                    "point has no coordinates",
                ))
            }
            _ => {}
        }
        if let Some(i) = point.iter().position(|x| !x.is_finite()) {
            return Err(non_finite(i, point[i]));
        }
        match point.iter().position(|x| x.abs() > self.max_abs) {
            Some(i) => Err(out_of_range(i, point[i], self.max_abs)),
            None => Ok(()),
        }
    }
}

fn out_of_range(index: usize, value: f64, max_abs: f64) -> Reject {
    Reject::new(
        RejectReason::OutOfRange,
        format!(
            "coordinate {} is {value:e}, beyond the bound of ±{max_abs:e} on coordinates",
            index + 1
        ),
    )
}

fn wrong_dimension(got: usize, expected: usize) -> Reject {
    let noun = if got == 1 {
        "coordinate"
    } else {
        "coordinates"
    };
    Reject::new(
        RejectReason::Dimension,
        format!("point has {got} {noun}, expected {expected}"),
    )
}

fn non_finite(index: usize, value: f64) -> Reject {
    let what = if value.is_nan() { "NaN" } else { "infinite" };
    Reject::new(
        RejectReason::NonFinite,
        format!("coordinate {} is {what}", index + 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_accepted_point_fixes_the_dimension() {
        let mut shape = Shape::new(None);
        let mut out = vec![1.0, 2.0];
        assert!(shape.settle(&mut out, 0).is_ok());
        assert_eq!(shape.dim(), Some(2));
        out.extend([3.0, 4.0, 5.0]);
        let reject = shape.settle(&mut out, 2).unwrap_err();
        assert_eq!(reject.reason, RejectReason::Dimension);
        assert_eq!(reject.detail, "point has 3 coordinates, expected 2");
        assert_eq!(out, [1.0, 2.0]);
    }

    #[test]
    fn rejected_point_does_not_fix_the_dimension() {
        let mut shape = Shape::new(None);
        let mut out = vec![f64::NAN, 1.0, 2.0];
        let reject = shape.settle(&mut out, 0).unwrap_err();
        assert_eq!(reject.reason, RejectReason::NonFinite);
        assert_eq!(reject.detail, "coordinate 1 is NaN");
        assert_eq!(shape.dim(), None);
        assert!(out.is_empty());
    }

    #[test]
    fn coordinates_beyond_the_bound_are_refused() {
        let mut shape = Shape::new(Some(2));
        let mut out = vec![1.0, -1e308];
        let reject = shape.settle(&mut out, 0).unwrap_err();
        assert_eq!(reject.reason, RejectReason::OutOfRange);
        assert_eq!(
            reject.detail,
            "coordinate 2 is -1e308, beyond the bound of ±1e100 on coordinates"
        );
        shape.set_max_abs(1e6);
        let mut out = vec![1e6, -1e6];
        assert!(shape.settle(&mut out, 0).is_ok());
        out.extend([2e6, 0.0]);
        assert_eq!(
            shape.settle(&mut out, 2).unwrap_err().reason,
            RejectReason::OutOfRange
        );
        shape.set_max_abs(1e200);
        assert_eq!(shape.max_abs(), MAX_ABS_COORDINATE);
    }

    #[test]
    fn infinity_and_empty_points_are_refused() {
        let mut shape = Shape::new(Some(2));
        let mut out = vec![1.0, f64::NEG_INFINITY];
        let reject = shape.settle(&mut out, 0).unwrap_err();
        assert_eq!(reject.detail, "coordinate 2 is infinite");
        let mut empty = Vec::new();
        let reject = Shape::new(None).settle(&mut empty, 0).unwrap_err();
        assert_eq!(reject.reason, RejectReason::Dimension);
    }
}
