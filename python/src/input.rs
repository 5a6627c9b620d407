//! Points from numpy: float64 or float32, C or Fortran order (or any strides),
//! read in place. The core works on row-major float64 (a d×n column-major view):
//! C-ordered float64 is used without a copy; anything else is converted by blocks
//! (scoring) or once (fitting), with the interpreter lock released.

use std::borrow::Cow;

use gmm_model::{points_from_rows, Points};
use numpy::ndarray::{ArrayView2, Axis};
use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Points scored per block when they must be converted: bounds the extra memory
/// to a few MiB whatever the input's size.
pub const SCORE_BLOCK: usize = 1 << 16;

/// A 2-d float64 or float32 numpy array, borrowed read-only.
#[derive(FromPyObject)]
pub enum PyPoints<'py> {
    F64(PyReadonlyArray2<'py, f64>),
    F32(PyReadonlyArray2<'py, f32>),
}

impl<'py> PyPoints<'py> {
    /// A view that may cross into code running without the interpreter lock.
    pub fn view(&self) -> PointsView<'_> {
        match self {
            Self::F64(a) => PointsView::F64(a.as_array()),
            Self::F32(a) => PointsView::F32(a.as_array()),
        }
    }

    pub fn n_features(&self) -> usize {
        match self {
            Self::F64(a) => a.shape()[1],
            Self::F32(a) => a.shape()[1],
        }
    }
}

/// Rows are points, columns features.
#[derive(Clone, Copy)]
pub enum PointsView<'a> {
    F64(ArrayView2<'a, f64>),
    F32(ArrayView2<'a, f32>),
}

impl<'a> PointsView<'a> {
    pub fn n_points(&self) -> usize {
        match self {
            Self::F64(v) => v.nrows(),
            Self::F32(v) => v.nrows(),
        }
    }

    pub fn n_features(&self) -> usize {
        match self {
            Self::F64(v) => v.ncols(),
            Self::F32(v) => v.ncols(),
        }
    }

    /// Points `start..start + len`, row-major float64: borrowed when the input is
    /// C-ordered float64, else converted.
    pub fn rows(self, start: usize, len: usize) -> Cow<'a, [f64]> {
        match self {
            Self::F64(v) => {
                let part = v.slice_axis_move(Axis(0), (start..start + len).into());
                match part.to_slice() {
                    Some(s) => Cow::Borrowed(s),
                    None => Cow::Owned(row_major(part)),
                }
            }
            Self::F32(v) => Cow::Owned(row_major(
                v.slice_axis_move(Axis(0), (start..start + len).into()),
            )),
        }
    }

    /// Every point, row-major float64.
    pub fn all_rows(self) -> Cow<'a, [f64]> {
        self.rows(0, self.n_points())
    }

    /// Calls `f` on consecutive blocks of at most [`SCORE_BLOCK`] points, with the
    /// index of each block's first point.
    pub fn for_each_block<E>(
        &self,
        mut f: impl FnMut(usize, Points<'_>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<gmm_model::ModelError>,
    {
        let (n, d) = (self.n_points(), self.n_features());
        let mut start = 0;
        while start < n {
            let len = SCORE_BLOCK.min(n - start);
            let rows = self.rows(start, len);
            f(start, points_from_rows(&rows, d)?)?;
            start += len;
        }
        Ok(())
    }
}

/// Copies any 2-d layout into row-major float64, reading Fortran-ordered input
/// column by column (its contiguous direction).
fn row_major<T: Copy + Into<f64>>(v: ArrayView2<'_, T>) -> Vec<f64> {
    let (n, d) = v.dim();
    let mut out = vec![0.0; n * d];
    if v.t().is_standard_layout() {
        for (j, col) in v.columns().into_iter().enumerate() {
            for (i, &x) in col.iter().enumerate() {
                out[i * d + j] = x.into();
            }
        }
    } else {
        for (o, &x) in out.iter_mut().zip(v.iter()) {
            *o = x.into();
        }
    }
    out
}

/// Checks that points have the model's number of features (scikit-learn's layer
/// says so first; this keeps direct callers of the core from a wrong shape).
pub fn check_features(got: usize, expected: usize) -> PyResult<()> {
    if got != expected {
        return Err(PyValueError::new_err(format!(
            "X has {got} features, but the model is expecting {expected} features as input."
        )));
    }
    Ok(())
}
