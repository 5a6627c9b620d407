//! A block's weighted sums about a centre, the E-step's share of the sufficient
//! statistics: [`CentredSums`] and the two kernels that fill it from a block of
//! points in coordinate-major order (the layout of `kernels`), [`block_moments`] and
//! [`add_block_scatter`].
//!
//! Kept apart from the density kernels: these serve the statistics (`stats` calls
//! them as well as the E-step), and [`CentredSums`] carries the exact shift that keeps
//! them accurate far from the origin. Like the density kernels they are generic over
//! [`Simd`] and `#[inline(always)]`, with summation orders fixed by the code.

use nalgebra::{DMatrix, DVector};

use super::simd::{Simd, LANES, WIDTH};

/// Points per block: the block (d×BLOCK) and its centred and weighted copies for the
/// statistics should stay in L1/L2, while each 2×2 scatter tile wants a long run of
/// points to amortise its horizontal sums. Measured (examples/estep_cpu, full d = 16,
/// K = 16, CPU time): 128 beat 64 by ~4 % and 256 by ~15 %.
pub(crate) const BLOCK: usize = 128;

/// Weighted sums of points about a fixed centre c: `n = Σ r`, `s = Σ r (x − c)` and
/// the lower triangle (column-major d×d) or the diagonal of
/// `S = Σ r (x − c)(x − c)ᵀ`.
///
/// About a centre close to the weighted mean these are what the exact shift formula
/// needs: with `δ = s / n`, the mean is `c + δ` and the scatter about it is
/// `S − n δδᵀ`. The subtraction cancels only as much as `n δ_i² / S_ii`, which
/// [`CentredSums::shift_is_accurate`] bounds, so no digits are lost however far the
/// data sit from the origin.
#[derive(Clone, Debug)]
pub(crate) struct CentredSums {
    pub n: f64,
    pub s: Vec<f64>,
    /// d×d (lower triangle used) when full, d when diagonal.
    pub scatter: Vec<f64>,
    pub full: bool,
}

impl CentredSums {
    pub fn new(d: usize, full: bool) -> Self {
        Self {
            n: 0.0,
            s: vec![0.0; d],
            scatter: vec![0.0; if full { d * d } else { d }],
            full,
        }
    }

    pub fn clear(&mut self) {
        self.n = 0.0;
        self.s.fill(0.0);
        self.scatter.fill(0.0);
    }

    fn scatter_diag(&self, i: usize) -> f64 {
        if self.full {
            self.scatter[i * self.s.len() + i]
        } else {
            self.scatter[i]
        }
    }

    /// `δ = s / n`, the weighted mean's offset from the centre.
    pub fn delta(&self) -> Vec<f64> {
        self.s.iter().map(|s| s / self.n).collect()
    }

    /// Whether `S − n δδᵀ` keeps all but one bit: `n δ_i² ≤ S_ii / 2` in every
    /// coordinate. Then the shifted diagonal is at least half of `S_ii`, and every
    /// entry's rounding error stays within a few ulps of `sqrt(M2_ii M2_ll)`, as good
    /// as a second pass about the mean would give.
    ///
    /// It holds for a union of sums about the same centre when it holds for each
    /// part: `n δ_i²` is convex in the parts (Cauchy–Schwarz), `S_ii` additive.
    pub fn shift_is_accurate(&self) -> bool {
        self.s
            .iter()
            .enumerate()
            .all(|(i, &s)| s * (s / self.n) <= 0.5 * self.scatter_diag(i))
    }

    /// Whether [`CentredSums::shift_is_accurate`] would hold after adding a block's
    /// `moments` (from [`block_moments`], about the same centre).
    pub fn accurate_with(&self, moments: &CentredSums) -> bool {
        let n = self.n + moments.n;
        (0..self.s.len()).all(|i| {
            let s = self.s[i] + moments.s[i];
            s * (s / n) <= 0.5 * (self.scatter_diag(i) + moments.scatter[i])
        })
    }

    /// Adds a block's weight and first moments (from [`block_moments`], about the
    /// same centre), and for diagonal sums the scatter too; a full scatter comes from
    /// [`add_block_scatter`].
    pub fn add_moments(&mut self, moments: &CentredSums) {
        self.n += moments.n;
        self.s.iter_mut().zip(&moments.s).for_each(|(a, b)| *a += b);
        if !self.full {
            self.scatter
                .iter_mut()
                .zip(&moments.scatter)
                .for_each(|(a, b)| *a += b);
        }
    }

    /// The full scatter about the weighted mean, `S − n δδᵀ`, exactly symmetric.
    pub fn full_scatter(&self, delta: &[f64]) -> DMatrix<f64> {
        let d = self.s.len();
        let mut m = DMatrix::zeros(d, d);
        for l in 0..d {
            for i in l..d {
                let v = self.scatter[i + l * d] - self.s[i] * delta[l];
                m[(i, l)] = v;
                m[(l, i)] = v;
            }
        }
        m
    }

    /// The diagonal of the scatter about the weighted mean.
    pub fn diag_scatter(&self, delta: &[f64]) -> DVector<f64> {
        DVector::from_fn(self.s.len(), |i, _| {
            self.scatter_diag(i) - self.s[i] * delta[i]
        })
    }
}

/// Weights below this count as zero in the statistics. Such a weight's share of any
/// sum that matters is far below rounding (it would take 1e274 points to move a
/// weight of 1e-16), but its products with the points are subnormal numbers, which
/// cost x86 a microcode assist of ~100 cycles each: with well-separated components
/// (d = 32, K = 8 in benches/estep.rs) the statistics ran 7x slower because of them.
pub(crate) const NEGLIGIBLE_WEIGHT: f64 = 1e-290;

/// Phase one of a block's statistics: its weight `n`, `s = Σ r (x − c)` and the
/// diagonal of `Σ r (x − c)(x − c)ᵀ`, written over `moments` (a diagonal
/// [`CentredSums`]); with `keep` also the weighted centred points
/// U = (x − c)·diag(√r), kept in `work` for [`add_block_scatter`]. The caller can thus check
/// the centre before paying for the d² part.
///
/// `r` holds `bp` weights, zero on padding lanes. Returns false, touching nothing
/// else, when every weight is zero (or below [`NEGLIGIBLE_WEIGHT`]): a component that
/// explains none of the block costs nothing more.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn block_moments<S: Simd>(
    s: S,
    xt: &[f64],
    bp: usize,
    c: &[f64],
    r: &[f64],
    keep: bool,
    work: &mut Vec<f64>,
    moments: &mut CentredSums,
) -> bool {
    debug_assert!(!moments.full);
    let d = c.len();
    let zero = s.splat(0.0);
    let floor = s.splat(NEGLIGIBLE_WEIGHT);
    // Every value used is written first: no zero-filling of the whole buffer (a
    // memset of 2·d·bp values per component and block showed up at 6 %).
    let dp = d.next_multiple_of(2);
    let need = if keep { (2 + dp) * bp } else { bp };
    if work.len() < need {
        work.resize(need, 0.0);
    }
    let mut n = [zero; 2];
    for (rl, kept) in r.chunks_exact(LANES).zip(work.chunks_exact_mut(LANES)) {
        for (v, n) in n.iter_mut().enumerate() {
            let rv = s.zero_below(s.load(&rl[v * WIDTH..]), floor);
            s.store(&mut kept[v * WIDTH..], rv);
            *n = s.add(*n, rv);
        }
    }
    let n = s.sum(s.add(n[0], n[1]));
    if n == 0.0 {
        return false;
    }
    moments.n = n;
    let (r, work) = work.split_at_mut(bp);
    let r: &[f64] = r;
    let rows = xt
        .chunks_exact(bp)
        .zip(c)
        .zip(moments.s.iter_mut().zip(moments.scatter.iter_mut()));
    if !keep {
        for ((row, &m), (sv, sc)) in rows {
            let m = s.splat(m);
            let (mut s1, mut s2) = ([zero; 2], [zero; 2]);
            for (x, rl) in row.chunks_exact(LANES).zip(r.chunks_exact(LANES)) {
                for v in 0..2 {
                    let dv = s.sub(s.load(&x[v * WIDTH..]), m);
                    let wv = s.mul(s.load(&rl[v * WIDTH..]), dv);
                    s1[v] = s.add(s1[v], wv);
                    s2[v] = s.mul_add(wv, dv, s2[v]);
                }
            }
            *sv = s.sum(s.add(s1[0], s1[1]));
            *sc = s.sum(s.add(s2[0], s2[1]));
        }
        return true;
    }
    // U = D·diag(√r), d rows, plus a zero row when d is odd so that the 2×2 tiles of
    // add_block_scatter never test for the edge. One array serves both sides of the
    // product U Uᵀ = D diag(r) Dᵀ: half the stores of keeping D and W = D·diag(r), and
    // diagonal tiles load two rows, not four.
    let (sr, u) = work[..(1 + dp) * bp].split_at_mut(bp);
    for (srl, rl) in sr.chunks_exact_mut(WIDTH).zip(r.chunks_exact(WIDTH)) {
        s.store(srl, s.sqrt(s.load(rl)));
    }
    if dp > d {
        u[d * bp..].fill(0.0);
    }
    let sr: &[f64] = sr;
    for (((row, &m), (sv, sc)), ur) in rows.zip(u.chunks_exact_mut(bp)) {
        let m = s.splat(m);
        let (mut s1, mut s2) = ([zero; 2], [zero; 2]);
        for (((x, rl), srl), ul) in row
            .chunks_exact(LANES)
            .zip(r.chunks_exact(LANES))
            .zip(sr.chunks_exact(LANES))
            .zip(ur.chunks_exact_mut(LANES))
        {
            for v in 0..2 {
                let o = v * WIDTH;
                let dv = s.sub(s.load(&x[o..]), m);
                let uv = s.mul(s.load(&srl[o..]), dv);
                s.store(&mut ul[o..], uv);
                s1[v] = s.mul_add(s.load(&rl[o..]), dv, s1[v]);
                s2[v] = s.mul_add(uv, uv, s2[v]);
            }
        }
        *sv = s.sum(s.add(s1[0], s1[1]));
        *sc = s.sum(s.add(s2[0], s2[1]));
    }
    true
}

/// Phase two: adds `U Uᵀ = Σ r (x − c)(x − c)ᵀ` (U from [`block_moments`] with
/// `keep`) to the lower triangle of the d×d column-major `lower`.
#[inline(always)]
pub(crate) fn add_block_scatter<S: Simd>(
    s: S,
    work: &[f64],
    d: usize,
    bp: usize,
    lower: &mut [f64],
) {
    let zero = s.splat(0.0);
    let dp = d.next_multiple_of(2);
    let u = &work[2 * bp..(2 + dp) * bp];
    // 2×2 tiles of row-by-row dot products along the points: eight independent
    // accumulator chains and one load per FMA; a diagonal tile needs only its three
    // lower entries and two rows.
    for ib in (0..d).step_by(2) {
        let (ua, ub) = (&u[ib * bp..][..bp], &u[(ib + 1) * bp..][..bp]);
        let mut acc = [zero; 6];
        for (a, b) in ua.chunks_exact(LANES).zip(ub.chunks_exact(LANES)) {
            for v in 0..2 {
                let o = v * WIDTH;
                let (xa, xb) = (s.load(&a[o..]), s.load(&b[o..]));
                acc[v] = s.mul_add(xa, xa, acc[v]);
                acc[2 + v] = s.mul_add(xb, xa, acc[2 + v]);
                acc[4 + v] = s.mul_add(xb, xb, acc[4 + v]);
            }
        }
        let total = s.sum4([
            s.add(acc[0], acc[1]),
            s.add(acc[2], acc[3]),
            s.add(acc[4], acc[5]),
            zero,
        ]);
        lower[ib + ib * d] += total[0];
        if ib + 1 < d {
            lower[ib + 1 + ib * d] += total[1];
            lower[ib + 1 + (ib + 1) * d] += total[2];
        }
        for lb in (0..ib).step_by(2) {
            let (la, lbr) = (&u[lb * bp..][..bp], &u[(lb + 1) * bp..][..bp]);
            let mut acc = [zero; 8];
            for (((a, b), c), e) in ua
                .chunks_exact(LANES)
                .zip(ub.chunks_exact(LANES))
                .zip(la.chunks_exact(LANES))
                .zip(lbr.chunks_exact(LANES))
            {
                for v in 0..2 {
                    let o = v * WIDTH;
                    let (xa, xb) = (s.load(&a[o..]), s.load(&b[o..]));
                    let (ya, yb) = (s.load(&c[o..]), s.load(&e[o..]));
                    acc[v] = s.mul_add(xa, ya, acc[v]);
                    acc[2 + v] = s.mul_add(xb, ya, acc[2 + v]);
                    acc[4 + v] = s.mul_add(xa, yb, acc[4 + v]);
                    acc[6 + v] = s.mul_add(xb, yb, acc[6 + v]);
                }
            }
            let total = s.sum4([
                s.add(acc[0], acc[1]),
                s.add(acc[2], acc[3]),
                s.add(acc[4], acc[5]),
                s.add(acc[6], acc[7]),
            ]);
            // Off the diagonal (lb + 1 < ib): all four entries are in the lower
            // triangle; row ib + 1 exists only when d > ib + 1.
            lower[ib + lb * d] += total[0];
            lower[ib + (lb + 1) * d] += total[2];
            if ib + 1 < d {
                lower[ib + 1 + lb * d] += total[1];
                lower[ib + 1 + (lb + 1) * d] += total[3];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::transpose_points;
    use crate::linalg::points_from_rows;
    use crate::simd::{padded, Portable};

    fn block(d: usize, b: usize) -> (Vec<f64>, Vec<f64>) {
        let flat: Vec<f64> = (0..d * b)
            .map(|i| ((i * 37 % 11) as f64) * 0.3 - 1.0)
            .collect();
        let r: Vec<f64> = (0..b).map(|j| 0.1 + (j % 3) as f64 * 0.2).collect();
        (flat, r)
    }

    #[test]
    fn centred_sums_agree_with_definition() {
        for d in [1usize, 2, 3, 9] {
            for full in [true, false] {
                let b = 13;
                let (flat, mut r) = block(d, b);
                let x = points_from_rows(&flat, d).unwrap();
                let bp = padded(b);
                let mut xt = Vec::new();
                transpose_points(x, bp, &mut xt);
                r.resize(bp, 0.0);
                let c: Vec<f64> = (0..d).map(|i| 0.05 * i as f64).collect();
                let mut sums = CentredSums::new(d, full);
                let mut moments = CentredSums::new(d, false);
                let mut work = Vec::new();
                assert!(block_moments(
                    Portable,
                    &xt,
                    bp,
                    &c,
                    &r,
                    full,
                    &mut work,
                    &mut moments
                ));
                sums.add_moments(&moments);
                if full {
                    add_block_scatter(Portable, &work, d, bp, &mut sums.scatter);
                }
                let cv = DVector::from_column_slice(&c);
                let mut want = DMatrix::zeros(d, d);
                let mut want_s = DVector::zeros(d);
                for (col, &rj) in x.column_iter().zip(&r) {
                    let dv = col - &cv;
                    want += rj * &dv * dv.transpose();
                    want_s += rj * &dv;
                }
                let n: f64 = r.iter().sum();
                assert!((sums.n - n).abs() < 1e-12);
                assert!((DVector::from_column_slice(&sums.s) - &want_s).norm() < 1e-12);
                let delta = sums.delta();
                let mean = &cv + DVector::from_column_slice(&delta);
                let mut about_mean = DMatrix::zeros(d, d);
                for (col, &rj) in x.column_iter().zip(&r) {
                    let dv = col - &mean;
                    about_mean += rj * &dv * dv.transpose();
                }
                if full {
                    assert!((sums.full_scatter(&delta) - &about_mean).norm() < 1e-12);
                } else {
                    assert!((sums.diag_scatter(&delta) - about_mean.diagonal()).norm() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn zero_weights_touch_nothing() {
        let (flat, _) = block(3, 5);
        let x = points_from_rows(&flat, 3).unwrap();
        let mut xt = Vec::new();
        transpose_points(x, padded(5), &mut xt);
        let mut moments = CentredSums::new(3, false);
        let r = vec![0.0; padded(5)];
        assert!(!block_moments(
            Portable,
            &xt,
            padded(5),
            &[0.0; 3],
            &r,
            true,
            &mut Vec::new(),
            &mut moments
        ));
        assert_eq!(moments.n, 0.0);
    }
}
