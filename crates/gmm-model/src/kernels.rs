//! The E-step's density kernels: weighted log-probabilities for each covariance
//! type and the responsibilities, on blocks of points in coordinate-major order.
//!
//! The kernels work on a block of points transposed to coordinate-major order (`xt`:
//! d rows of `bp` values, `bp` a whole number of [`LANES`](super::simd::LANES)), so
//! that every loop runs along points and vectorises whatever d is: the small-d cases
//! are not left to scalar code, and no d×d matrix product with a short inner
//! dimension pays for packing.
//!
//! Every kernel is generic over [`Simd`] and `#[inline(always)]`, so the E-step can
//! instantiate it once for AVX2/FMA (selected at run time, see `simd`) and once
//! portably. Summation orders are fixed by the code, never by the thread that runs
//! it, so results are bit-identical for any number of threads on a given machine.
//! The statistics that the responsibilities weight are in `block_stats`.

use nalgebra::DMatrix;

use super::linalg::Points;
use super::simd::{Simd, LN_MIN_POSITIVE, WIDTH};

/// Vectors per whitening tile: with a pair of rows of L⁻¹ at a time, eight
/// independent FMA chains, enough to cover the FMA latency on two ports.
const TILE_VECS: usize = 4;

/// Copies the columns of `x` into `xt`, d rows of `bp` values; lanes past the last
/// point are zero (finite, so that zero responsibilities keep them out of every sum).
#[inline(always)]
pub(crate) fn transpose_points(x: Points<'_>, bp: usize, xt: &mut Vec<f64>) {
    let (d, b) = x.shape();
    debug_assert!(b <= bp);
    xt.resize(d * bp, 0.0);
    for (j, col) in x.column_iter().enumerate() {
        for (row, &v) in xt.chunks_exact_mut(bp).zip(col.iter()) {
            row[j] = v;
        }
    }
    for row in xt.chunks_exact_mut(bp) {
        row[b..].fill(0.0);
    }
}

/// The lower triangle of a d×d matrix packed by rows: row i holds its i + 1 entries
/// from offset i(i + 1)/2, the order in which the whitening kernel reads them.
pub(crate) fn pack_lower_rows(m: &DMatrix<f64>, out: &mut Vec<f64>) {
    let d = m.nrows();
    for i in 0..d {
        out.extend((0..=i).map(|l| m[(i, l)]));
    }
}

/// Tiles over `bp` lanes: `(start, true)` for groups of [`TILE_VECS`] vectors, then
/// `(start, false)` for a last group of two (bp is a whole number of
/// [`LANES`](super::simd::LANES)).
#[inline(always)]
fn tiles(bp: usize) -> impl Iterator<Item = (usize, bool)> {
    let wide = bp / (TILE_VECS * WIDTH) * (TILE_VECS * WIDTH);
    (0..wide)
        .step_by(TILE_VECS * WIDTH)
        .map(|start| (start, true))
        .chain((wide..bp).step_by(2 * WIDTH).map(|start| (start, false)))
}

/// `tile = xt[.., start..] − c`: d rows of NV vectors.
#[inline(always)]
fn centred_tile<S: Simd, const NV: usize>(
    s: S,
    xt: &[f64],
    bp: usize,
    start: usize,
    c: &[f64],
    tile: &mut [f64],
) {
    for ((src, dst), &m) in xt
        .chunks_exact(bp)
        .zip(tile.chunks_exact_mut(NV * WIDTH))
        .zip(c)
    {
        let m = s.splat(m);
        for v in 0..NV {
            let x = s.load(&src[start + v * WIDTH..]);
            s.store(&mut dst[v * WIDTH..], s.sub(x, m));
        }
    }
}

/// Applies L⁻¹ (packed by [`pack_lower_rows`]) to a centred tile (d rows of NV
/// vectors) and hands each row of the result to `row`. Rows go in pairs, so every
/// loaded tile vector feeds two independent accumulator chains.
#[inline(always)]
fn whiten_tile<S: Simd, const NV: usize>(
    s: S,
    tri: &[f64],
    d: usize,
    tile: &[f64],
    mut row: impl FnMut(usize, &[S::V; NV]),
) {
    let zero = s.splat(0.0);
    let mut i = 0;
    while i + 1 < d {
        let ra = &tri[i * (i + 1) / 2..][..i + 1];
        let rb = &tri[(i + 1) * (i + 2) / 2..][..i + 2];
        let (mut ya, mut yb) = ([zero; NV], [zero; NV]);
        for (t, (&a, &b)) in tile.chunks_exact(NV * WIDTH).zip(ra.iter().zip(rb)) {
            let (a, b) = (s.splat(a), s.splat(b));
            for v in 0..NV {
                let tv = s.load(&t[v * WIDTH..]);
                ya[v] = s.mul_add(a, tv, ya[v]);
                yb[v] = s.mul_add(b, tv, yb[v]);
            }
        }
        let t = &tile[(i + 1) * NV * WIDTH..];
        let b = s.splat(rb[i + 1]);
        for v in 0..NV {
            yb[v] = s.mul_add(b, s.load(&t[v * WIDTH..]), yb[v]);
        }
        row(i, &ya);
        row(i + 1, &yb);
        i += 2;
    }
    if i < d {
        let ra = &tri[i * (i + 1) / 2..][..i + 1];
        let mut ya = [zero; NV];
        for (t, &a) in tile.chunks_exact(NV * WIDTH).zip(ra) {
            let a = s.splat(a);
            for v in 0..NV {
                ya[v] = s.mul_add(a, s.load(&t[v * WIDTH..]), ya[v]);
            }
        }
        row(i, &ya);
    }
}

/// `lp[start..] = c − ½ q` for NV vectors of `q`.
#[inline(always)]
fn store_log_prob<S: Simd, const NV: usize>(s: S, c: f64, q: &[S::V; NV], lp: &mut [f64]) {
    let (c, half) = (s.splat(c), s.splat(0.5));
    for v in 0..NV {
        s.store(&mut lp[v * WIDTH..], s.sub(c, s.mul(half, q[v])));
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn whitened_log_prob_tile<S: Simd, const NV: usize>(
    s: S,
    tri: &[f64],
    mean: &[f64],
    c: f64,
    xt: &[f64],
    bp: usize,
    start: usize,
    tile: &mut [f64],
    lp: &mut [f64],
) {
    centred_tile::<S, NV>(s, xt, bp, start, mean, tile);
    let mut q = [s.splat(0.0); NV];
    whiten_tile::<S, NV>(s, tri, mean.len(), tile, |_, y| {
        for v in 0..NV {
            q[v] = s.mul_add(y[v], y[v], q[v]);
        }
    });
    store_log_prob::<S, NV>(s, c, &q, &mut lp[start..]);
}

/// `lp[j] = c − ½ ‖L⁻¹ (x_j − μ)‖²` for the `bp` points of `xt`.
///
/// `tri` is L⁻¹ packed by [`pack_lower_rows`]; `tile` is scratch.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn whitened_log_prob<S: Simd>(
    s: S,
    tri: &[f64],
    mean: &[f64],
    c: f64,
    xt: &[f64],
    bp: usize,
    tile: &mut Vec<f64>,
    lp: &mut [f64],
) {
    tile.resize(mean.len() * TILE_VECS * WIDTH, 0.0);
    for (start, wide) in tiles(bp) {
        if wide {
            whitened_log_prob_tile::<S, TILE_VECS>(s, tri, mean, c, xt, bp, start, tile, lp);
        } else {
            whitened_log_prob_tile::<S, 2>(s, tri, mean, c, xt, bp, start, tile, lp);
        }
    }
}

/// `z = L⁻¹ (x_j − c)` for the `bp` points of `xt`, d rows of `bp` (tied covariance:
/// one whitening per point serves every component).
#[inline(always)]
pub(crate) fn whiten_points<S: Simd>(
    s: S,
    tri: &[f64],
    c: &[f64],
    xt: &[f64],
    bp: usize,
    tile: &mut Vec<f64>,
    z: &mut Vec<f64>,
) {
    let d = c.len();
    tile.resize(d * 2 * WIDTH, 0.0);
    z.resize(d * bp, 0.0);
    for start in (0..bp).step_by(2 * WIDTH) {
        centred_tile::<S, 2>(s, xt, bp, start, c, tile);
        whiten_tile::<S, 2>(s, tri, d, tile, |i, y| {
            for (v, &y) in y.iter().enumerate() {
                s.store(&mut z[i * bp + start + v * WIDTH..], y);
            }
        });
    }
}

/// Accumulates `q[j] = Σ_i f(x_ij, i)²` along the rows of `rows` (d rows of `bp`)
/// for NV vectors of points from `start`.
#[inline(always)]
fn sum_sq_tile<S: Simd, const NV: usize>(
    s: S,
    rows: &[f64],
    bp: usize,
    start: usize,
    f: impl Fn(usize, S::V) -> S::V,
) -> [S::V; NV] {
    let mut q = [s.splat(0.0); NV];
    for (i, row) in rows.chunks_exact(bp).enumerate() {
        for v in 0..NV {
            let y = f(i, s.load(&row[start + v * WIDTH..]));
            q[v] = s.mul_add(y, y, q[v]);
        }
    }
    q
}

/// `lp[j] = c − ½ ‖z_j − o‖²` (tied covariance, z already whitened).
#[inline(always)]
pub(crate) fn offset_log_prob<S: Simd>(
    s: S,
    z: &[f64],
    o: &[f64],
    c: f64,
    bp: usize,
    lp: &mut [f64],
) {
    let f = |i: usize, x: S::V| s.sub(x, s.splat(o[i]));
    sum_sq_log_prob(s, z, bp, c, lp, f, |q| q);
}

/// `lp[j] = c − ½ Σ_i ((x_ij − μ_i) p_i)²` (diagonal covariance, p = 1/σ).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn diag_log_prob<S: Simd>(
    s: S,
    inv_sd: &[f64],
    mean: &[f64],
    c: f64,
    xt: &[f64],
    bp: usize,
    lp: &mut [f64],
) {
    let f = |i: usize, x: S::V| s.mul(s.sub(x, s.splat(mean[i])), s.splat(inv_sd[i]));
    sum_sq_log_prob(s, xt, bp, c, lp, f, |q| q);
}

/// `lp[j] = c − ½ ‖x_j − μ‖² p²` (spherical covariance, p = 1/σ).
#[inline(always)]
pub(crate) fn spherical_log_prob<S: Simd>(
    s: S,
    p: f64,
    mean: &[f64],
    c: f64,
    xt: &[f64],
    bp: usize,
    lp: &mut [f64],
) {
    let f = |i: usize, x: S::V| s.sub(x, s.splat(mean[i]));
    let p = s.splat(p);
    // (q p) p, as q·p·p reads.
    sum_sq_log_prob(s, xt, bp, c, lp, f, |q| s.mul(s.mul(q, p), p));
}

/// `lp[j] = c − ½ g(Σ_i f(i, x_ij)²)` over the columns of `rows` (d rows of `bp`),
/// tile by tile: the shared loop of the diagonal, spherical and tied kernels.
#[inline(always)]
fn sum_sq_log_prob<S: Simd>(
    s: S,
    rows: &[f64],
    bp: usize,
    c: f64,
    lp: &mut [f64],
    f: impl Fn(usize, S::V) -> S::V + Copy,
    g: impl Fn(S::V) -> S::V + Copy,
) {
    for (start, wide) in tiles(bp) {
        // Plain loops, not `array::map`: a closure through the standard library
        // may not inline into the target-feature function.
        if wide {
            let mut q = sum_sq_tile::<S, TILE_VECS>(s, rows, bp, start, f);
            for q in &mut q {
                *q = g(*q);
            }
            store_log_prob(s, c, &q, &mut lp[start..]);
        } else {
            let mut q = sum_sq_tile::<S, 2>(s, rows, bp, start, f);
            for q in &mut q {
                *q = g(*q);
            }
            store_log_prob(s, c, &q, &mut lp[start..]);
        }
    }
}

/// Turns K rows of `bp` weighted log-probabilities `ln π_k N(x_j | k)` into
/// responsibilities in place and writes `ln p(x_j)` (log-sum-exp over k) to `lse`.
///
/// The exponentials of the log-sum-exp are reused: `γ_jk = e^(v_k − max) / Σ e^(v − max)`,
/// computed by [`Simd::exp`] (a few ulps, vectorised; libm's scalar `exp` was a
/// tenth of the E-step). Those that would be subnormal (γ below ~2e-308) are zero:
/// they cannot move the sum (at least 1), and would only cost microcode assists
/// downstream. A point whose every density underflows (`ln p = −∞`, |x| near 1e154)
/// explains nothing and is given to no component, as are the padding lanes past `b`.
#[inline(always)]
pub(crate) fn responsibilities<S: Simd>(
    s: S,
    lp: &mut [f64],
    b: usize,
    bp: usize,
    lse: &mut [f64],
) {
    let floor = s.splat(LN_MIN_POSITIVE);
    for start in (0..bp).step_by(WIDTH) {
        let mut max = s.splat(f64::NEG_INFINITY);
        for row in lp.chunks_exact(bp) {
            max = s.max(max, s.load(&row[start..]));
        }
        let mut sum = s.splat(0.0);
        for row in lp.chunks_exact_mut(bp) {
            // NaN where every density is −∞ (−∞ − −∞): zeroed with the rest.
            let t = s.sub(s.load(&row[start..]), max);
            let e = s.zero_unless_ge(t, floor, s.exp(t));
            s.store(&mut row[start..], e);
            sum = s.add(sum, e);
        }
        // Points whose every density is −∞ keep ln p = −∞ and weigh nothing.
        let finite = s.splat(-f64::MAX);
        let total = s.select_ge(max, finite, s.add(max, s.ln(sum)), max);
        let mut scale = s.select_ge(max, finite, s.div(s.splat(1.0), sum), s.splat(0.0));
        if start + WIDTH <= b {
            s.store(&mut lse[start..], total);
        } else {
            // The last points of a block, and padding lanes that must weigh nothing.
            let (mut t, mut sc) = ([0.0; WIDTH], [0.0; WIDTH]);
            s.store(&mut t, total);
            s.store(&mut sc, scale);
            for w in 0..WIDTH {
                if start + w < b {
                    lse[start + w] = t[w];
                } else {
                    sc[w] = 0.0;
                }
            }
            scale = s.load(&sc);
        }
        for row in lp.chunks_exact_mut(bp) {
            let r = s.mul(s.load(&row[start..]), scale);
            s.store(&mut row[start..], r);
        }
    }
}

/// `Σ r ln r` over K rows of `bp` responsibilities (padding lanes are 0), as the
/// variational lower bound wants it. The responsibilities are 0 or normal (see
/// [`responsibilities`]), and 0 ln 0 counts as 0.
#[inline(always)]
pub(crate) fn resp_log_resp<S: Simd>(s: S, resp: &[f64], bp: usize) -> f64 {
    let tiny = s.splat(f64::MIN_POSITIVE);
    let mut acc = s.splat(0.0);
    for row in resp.chunks_exact(bp) {
        for start in (0..bp).step_by(WIDTH) {
            let r = s.load(&row[start..]);
            acc = s.add(acc, s.zero_unless_ge(r, tiny, s.mul(r, s.ln(r))));
        }
    }
    s.sum(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{Portable, LANES};

    #[test]
    fn responsibilities_are_stable() {
        let bp = LANES;
        // Two components; point 0 at 1000 (no overflow), point 1 with no density.
        let mut lp = vec![0.0; 2 * bp];
        lp[0] = 1000.0;
        lp[bp] = 1000.0;
        lp[1] = f64::NEG_INFINITY;
        lp[bp + 1] = f64::NEG_INFINITY;
        let mut lse = vec![0.0; 2];
        responsibilities(Portable, &mut lp, 2, bp, &mut lse);
        assert!((lse[0] - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(lse[1], f64::NEG_INFINITY);
        assert_eq!((lp[0], lp[bp]), (0.5, 0.5));
        assert_eq!((lp[1], lp[bp + 1]), (0.0, 0.0));
        // Padding lanes carry no weight.
        assert!(lp[2..bp].iter().all(|&v| v == 0.0));
    }
}
