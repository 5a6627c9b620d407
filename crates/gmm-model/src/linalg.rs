//! The point layout and the dense helpers on nalgebra matrices.
//!
//! Points are the columns of a d×n column-major matrix, so a row-major buffer of n
//! points of d coordinates (how every input format arrives) is viewed without a copy.
//! The E-step's vectorised kernels, which work on blocks of points transposed out of
//! this layout, are in `simd`, `kernels` and `block_stats`.

use nalgebra::{DMatrix, DMatrixView, DVector};

use super::error::{ModelError, Result};

/// n points of d coordinates as a d×n matrix view, one column per point.
pub type Points<'a> = DMatrixView<'a, f64>;

/// Views a row-major buffer of points (`flat.len() = n·d`) as a d×n matrix.
pub fn points_from_rows(flat: &[f64], d: usize) -> Result<Points<'_>> {
    if d == 0 || flat.len() % d != 0 {
        return Err(ModelError::InvalidShape(format!(
            "{} values are not a whole number of {d}-dimensional points",
            flat.len()
        )));
    }
    Ok(DMatrixView::from_slice(flat, d, flat.len() / d))
}

/// `m += c · v vᵀ`.
pub(crate) fn add_scaled_outer(m: &mut DMatrix<f64>, c: f64, v: &DVector<f64>) {
    if c != 0.0 {
        m.ger(c, v, v, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_view_is_column_per_point() {
        let flat = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x = points_from_rows(&flat, 3).unwrap();
        assert_eq!(x.shape(), (3, 2));
        assert_eq!(x[(0, 1)], 4.0);
        assert!(points_from_rows(&flat, 4).is_err());
    }
}
