//! The few dense-algebra helpers the estimator needs, and the point layout.
//!
//! Points are the columns of a d×n column-major matrix, so a row-major buffer of n
//! points of d coordinates (how every input format arrives) is viewed without a copy.
//! Products go through nalgebra's `gemm`, which hands matrices larger than 5×5 to
//! `matrixmultiply` (packed, cache-blocked, AVX/FMA chosen at run time).

use nalgebra::{DMatrix, DMatrixView, DVector, Dyn, MatrixView};

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

/// Below this dimension plain loops beat the packing of a gemm.
pub(crate) const GEMM_MIN_DIM: usize = 6;

/// `m += c · v vᵀ`.
pub(crate) fn add_scaled_outer(m: &mut DMatrix<f64>, c: f64, v: &DVector<f64>) {
    if c != 0.0 {
        m.ger(c, v, v, 1.0);
    }
}

/// `Σ_j r_j (x_j − mean)(x_j − mean)ᵀ` over the columns of `x`.
///
/// `scratch` is reused between calls to hold the centred and the weighted points.
pub(crate) fn weighted_scatter(
    x: Points<'_>,
    r: &[f64],
    mean: &DVector<f64>,
    scratch: &mut Vec<f64>,
) -> DMatrix<f64> {
    let (d, b) = x.shape();
    let mut s = DMatrix::zeros(d, d);
    if d < GEMM_MIN_DIM {
        for (j, &rj) in r.iter().enumerate() {
            if rj == 0.0 {
                continue;
            }
            for col in 0..d {
                let dc = rj * (x[(col, j)] - mean[col]);
                for row in col..d {
                    s[(row, col)] += dc * (x[(row, j)] - mean[row]);
                }
            }
        }
        s.fill_upper_triangle_with_lower_triangle();
        return s;
    }
    scratch.clear();
    scratch.resize(2 * d * b, 0.0);
    let (centred, weighted) = scratch.split_at_mut(d * b);
    for j in 0..b {
        for i in 0..d {
            let c = x[(i, j)] - mean[i];
            centred[i + j * d] = c;
            weighted[i + j * d] = c * r[j];
        }
    }
    let weighted = DMatrixView::from_slice(weighted, d, b);
    // The transpose of the centred points, as a strided view: no copy.
    let centred_t =
        MatrixView::<f64, Dyn, Dyn, Dyn, Dyn>::from_slice_with_strides(centred, b, d, d, 1);
    s.gemm(1.0, &weighted, &centred_t, 0.0);
    // The product is symmetric up to rounding; make it exactly so.
    symmetrise(&mut s);
    s
}

/// Replaces `m` by `(m + mᵀ) / 2`.
pub(crate) fn symmetrise(m: &mut DMatrix<f64>) {
    let d = m.nrows();
    for col in 0..d {
        for row in col + 1..d {
            let v = 0.5 * (m[(row, col)] + m[(col, row)]);
            m[(row, col)] = v;
            m[(col, row)] = v;
        }
    }
}

/// `ln Σ exp(v)` without overflow; `-inf` when every entry is `-inf`.
pub(crate) fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + v.iter().map(|&x| (x - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_small_and_large_agree_with_definition() {
        for d in [2usize, 9] {
            let b = 13;
            let flat: Vec<f64> = (0..d * b)
                .map(|i| ((i * 37 % 11) as f64) * 0.3 - 1.0)
                .collect();
            let x = points_from_rows(&flat, d).unwrap();
            let r: Vec<f64> = (0..b).map(|j| 0.1 + (j % 3) as f64 * 0.2).collect();
            let mean = DVector::from_fn(d, |i, _| 0.05 * i as f64);
            let got = weighted_scatter(x, &r, &mean, &mut Vec::new());
            let mut want = DMatrix::zeros(d, d);
            for (j, rj) in r.iter().enumerate() {
                let c = x.column(j) - &mean;
                want += *rj * &c * c.transpose();
            }
            assert!((got - want).norm() < 1e-12, "d = {d}");
        }
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
    }

    #[test]
    fn rows_view_is_column_per_point() {
        let flat = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x = points_from_rows(&flat, 3).unwrap();
        assert_eq!(x.shape(), (3, 2));
        assert_eq!(x[(0, 1)], 4.0);
        assert!(points_from_rows(&flat, 4).is_err());
    }
}
