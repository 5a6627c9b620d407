//! The dense-algebra kernels of the E-step, and the point layout.
//!
//! Points are the columns of a d×n column-major matrix, so a row-major buffer of n
//! points of d coordinates (how every input format arrives) is viewed without a copy.
//!
//! The kernels work on a block of points transposed to coordinate-major order (`xt`:
//! d rows of `bp` values, `bp` a whole number of [`LANES`]), so that every loop runs
//! along points and vectorises whatever d is: the small-d cases are not left to scalar
//! code, and no d×d matrix product with a short inner dimension pays for packing.
//!
//! Every kernel is generic over [`Simd`] and `#[inline(always)]`, so the E-step can
//! instantiate it once for AVX2/FMA (selected at run time, see [`Avx2`]) and once
//! portably. Summation orders are fixed by the code, never by the thread that runs
//! it, so results are bit-identical for any number of threads on a given machine.

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

/// f64 per vector: one AVX2 register. ([`Portable`] spells out its four lanes.)
pub(crate) const WIDTH: usize = 4;

/// Points per lane group: two vectors, so that sums along points run as two
/// independent chains. Blocks are padded to a whole number of lane groups.
pub(crate) const LANES: usize = 2 * WIDTH;

/// Vectors per whitening tile: with a pair of rows of L⁻¹ at a time, eight
/// independent FMA chains, enough to cover the FMA latency on two ports.
const TILE_VECS: usize = 4;

/// `bp`: the number of lanes that hold `b` points.
pub(crate) fn padded(b: usize) -> usize {
    b.div_ceil(LANES) * LANES
}

/// Vectors of [`WIDTH`] f64 and the few operations the kernels need.
///
/// The kernels are written once against this trait and instantiated for
/// [`Portable`] and, on x86-64, for [`Avx2`]. Explicit vectors rather than
/// auto-vectorised loops: LLVM's SLP vectoriser packed the 2×2 scatter tiles
/// across accumulators instead of along points (shuffles, half-width FMAs).
pub(crate) trait Simd: Copy {
    type V: Copy;
    fn splat(self, x: f64) -> Self::V;
    /// The first [`WIDTH`] values of `s`.
    fn load(self, s: &[f64]) -> Self::V;
    fn store(self, s: &mut [f64], v: Self::V);
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c`.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The lanes summed in a fixed order, `(v0 + v1) + (v2 + v3)`.
    fn sum(self, v: Self::V) -> f64;
    /// Four vectors summed as [`Simd::sum`] does, at once (horizontal sums cost as
    /// many shuffles for four vectors as for one).
    fn sum4(self, v: [Self::V; 4]) -> [f64; 4];
    /// `v` where `test >= t`, zero elsewhere (and where `test` is NaN).
    fn zero_unless_ge(self, test: Self::V, t: Self::V, v: Self::V) -> Self::V;
    /// `v` where `v >= t`, zero elsewhere.
    #[inline(always)]
    fn zero_below(self, v: Self::V, t: Self::V) -> Self::V {
        self.zero_unless_ge(v, t, v)
    }
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `v` where `test >= t`, `otherwise` elsewhere.
    fn select_ge(self, test: Self::V, t: Self::V, v: Self::V, otherwise: Self::V) -> Self::V;
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    fn sqrt(self, a: Self::V) -> Self::V;
    /// `e^x` for `LN_MIN_POSITIVE <= x <= 0`, within a few ulps (see [`exp_poly`]);
    /// anything else gives an unspecified value.
    fn exp(self, x: Self::V) -> Self::V;
    /// `ln x` for positive normal x, within a few ulps (see [`ln_reduced`]);
    /// anything else gives an unspecified value.
    fn ln(self, x: Self::V) -> Self::V;
    /// Runs `f` in a function compiled for this instruction set, so that the
    /// kernels called in `f` (all `#[inline(always)]`) and the intrinsics under them
    /// inline into it. Kept to one kernel call per use: in one huge function LLVM
    /// stops inlining the standard library's iterator adapters, and code outside
    /// the target-feature function calls each intrinsic out of line.
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R;
}

const MANTISSA: u64 = (1 << 52) - 1;
/// The bits of 1.0: a zero exponent.
const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
/// The bits of 2^52: OR-ing an integer below 2^52 into its mantissa gives 2^52 + it.
const TWO_52_BITS: u64 = 0x4330_0000_0000_0000;

/// `2^52 + 2^51`: adding it rounds a double of magnitude below 2^51 to an integer,
/// which then sits in the low bits of the sum's mantissa.
const ROUNDING_MAGIC: f64 = 6_755_399_441_055_744.0;
const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split so that `n · LN2_HI` is exact for |n| < 2^21 (fdlibm's split).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// `e^r` for |r| <= ln2 / 2 by its Taylor series to r^13 (truncation below 5e-18
/// relative), Horner with multiply-adds.
#[inline(always)]
fn exp_poly<S: Simd>(s: S, r: S::V) -> S::V {
    const INV_FACT: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let mut p = s.splat(INV_FACT[13]);
    for &c in INV_FACT[..13].iter().rev() {
        p = s.mul_add(p, r, s.splat(c));
    }
    p
}

/// `ln x = e ln2 + ln m` from the exponent `e` (as a double) and the mantissa
/// `m` in [1, 2) of x: m is folded into [√2/2, √2), where
/// `ln m = 2 atanh f = 2 (f + f³/3 + f⁵/5 + …)` with `f = (m − 1)/(m + 1)`, |f| < 0.172;
/// eleven terms leave a truncation below 1e-17 relative.
#[inline(always)]
fn ln_reduced<S: Simd>(s: S, e: S::V, m: S::V) -> S::V {
    let one = s.splat(1.0);
    // m >= √2: m/2 and e + 1 (the halving is exact).
    let big = s.select_ge(m, s.splat(std::f64::consts::SQRT_2), one, s.splat(0.0));
    let m = s.select_ge(
        m,
        s.splat(std::f64::consts::SQRT_2),
        s.mul(m, s.splat(0.5)),
        m,
    );
    let e = s.add(e, big);
    let f = s.div(s.sub(m, one), s.add(m, one));
    let z = s.mul(f, f);
    let mut p = s.splat(1.0 / 21.0);
    for k in (0..10).rev() {
        p = s.mul_add(p, z, s.splat(1.0 / (2 * k + 1) as f64));
    }
    let ln_m = s.mul(s.add(f, f), p);
    s.mul_add(e, s.splat(LN2_HI), s.mul_add(e, s.splat(LN2_LO), ln_m))
}

/// The argument reduction of [`Simd::exp`]: `x = n ln2 + r`, returned as
/// (`n + ROUNDING_MAGIC`, r); the caller turns the first into 2^n.
#[inline(always)]
fn exp_reduce<S: Simd>(s: S, x: S::V) -> (S::V, S::V) {
    let magic = s.splat(ROUNDING_MAGIC);
    let t = s.mul_add(x, s.splat(LOG2_E), magic);
    let n = s.sub(t, magic);
    let r = s.mul_add(n, s.splat(-LN2_HI), x);
    let r = s.mul_add(n, s.splat(-LN2_LO), r);
    (t, r)
}

/// Plain arrays, for targets without AVX2: the same operations in the same order,
/// written out lane by lane (closures through `array::from_fn` do not always inline).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable;

/// A fused multiply-add where the target has one; otherwise the unfused pair (a
/// software fma would be an order of magnitude slower). A given build on a given
/// machine always takes the same path, so results stay reproducible.
#[inline(always)]
fn scalar_mul_add(a: f64, b: f64, c: f64) -> f64 {
    #[cfg(any(target_arch = "aarch64", target_feature = "fma"))]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(any(target_arch = "aarch64", target_feature = "fma")))]
    {
        a * b + c
    }
}

impl Simd for Portable {
    type V = [f64; WIDTH];
    #[inline(always)]
    fn splat(self, x: f64) -> Self::V {
        [x; WIDTH]
    }
    #[inline(always)]
    fn load(self, s: &[f64]) -> Self::V {
        s[..WIDTH].try_into().expect("a whole vector")
    }
    #[inline(always)]
    fn store(self, s: &mut [f64], v: Self::V) {
        s[..WIDTH].copy_from_slice(&v);
    }
    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
    }
    #[inline(always)]
    fn sub(self, a: Self::V, b: Self::V) -> Self::V {
        [a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]]
    }
    #[inline(always)]
    fn mul(self, a: Self::V, b: Self::V) -> Self::V {
        [a[0] * b[0], a[1] * b[1], a[2] * b[2], a[3] * b[3]]
    }
    #[inline(always)]
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        [
            scalar_mul_add(a[0], b[0], c[0]),
            scalar_mul_add(a[1], b[1], c[1]),
            scalar_mul_add(a[2], b[2], c[2]),
            scalar_mul_add(a[3], b[3], c[3]),
        ]
    }
    #[inline(always)]
    fn sum(self, v: Self::V) -> f64 {
        (v[0] + v[1]) + (v[2] + v[3])
    }
    #[inline(always)]
    fn sum4(self, v: [Self::V; 4]) -> [f64; 4] {
        [
            self.sum(v[0]),
            self.sum(v[1]),
            self.sum(v[2]),
            self.sum(v[3]),
        ]
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        f()
    }
    #[inline(always)]
    fn zero_unless_ge(self, test: Self::V, t: Self::V, v: Self::V) -> Self::V {
        std::array::from_fn(|i| if test[i] >= t[i] { v[i] } else { 0.0 })
    }
    #[inline(always)]
    fn max(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn select_ge(self, test: Self::V, t: Self::V, v: Self::V, otherwise: Self::V) -> Self::V {
        std::array::from_fn(|i| if test[i] >= t[i] { v[i] } else { otherwise[i] })
    }
    #[inline(always)]
    fn div(self, a: Self::V, b: Self::V) -> Self::V {
        [a[0] / b[0], a[1] / b[1], a[2] / b[2], a[3] / b[3]]
    }
    #[inline(always)]
    fn sqrt(self, a: Self::V) -> Self::V {
        [a[0].sqrt(), a[1].sqrt(), a[2].sqrt(), a[3].sqrt()]
    }
    #[inline(always)]
    fn ln(self, x: Self::V) -> Self::V {
        let bits = x.map(f64::to_bits);
        let e = bits.map(|b| ((b >> 52) & 0x7ff) as f64 - 1023.0);
        let m = bits.map(|b| f64::from_bits((b & MANTISSA) | ONE_BITS));
        ln_reduced(self, e, m)
    }
    #[inline(always)]
    fn exp(self, x: Self::V) -> Self::V {
        let (t, r) = exp_reduce(self, x);
        let p = exp_poly(self, r);
        std::array::from_fn(|i| {
            // n = t − MAGIC is an integer in [−1022, 0] for the documented range.
            let n = (t[i] - ROUNDING_MAGIC) as i64;
            p[i] * f64::from_bits(((n + 1023) as u64 & 0x7ff) << 52)
        })
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Avx2;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{exp_poly, exp_reduce, ln_reduced, Simd, MANTISSA, ONE_BITS, TWO_52_BITS, WIDTH};
    use std::arch::x86_64::*;

    /// Proof that the CPU has AVX2 and FMA: only [`Avx2::detect`] makes one, so one
    /// portable binary uses them where they exist (no `-C target-cpu`).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Avx2 {
        _detected: (),
    }

    impl Avx2 {
        /// `Some` where the CPU has AVX2 and FMA, unless the environment variable
        /// `GMM_STREAM_SIMD=portable` asks for the portable kernels (to test them, or
        /// to measure what the vectors buy, on a machine that has AVX2).
        pub(crate) fn detect() -> Option<Self> {
            static PORTABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            let portable = *PORTABLE.get_or_init(|| {
                std::env::var_os("GMM_STREAM_SIMD").is_some_and(|v| v == "portable")
            });
            (!portable && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
                .then_some(Self { _detected: () })
        }
    }

    // SAFETY, for every `unsafe` block below: an `Avx2` value exists only once
    // `detect` has found AVX2 and FMA on this CPU, so the intrinsics are supported;
    // loads and stores go through slices already cut to WIDTH values.
    //
    // Measured reason (examples/estep_cpu, CPU time per 16384 points, one thread):
    // full d=16 K=16 7.0 ms with these intrinsics against 16.9 ms for the same
    // kernels on `Portable` (GMM_STREAM_SIMD=portable); d=2 K=3 0.42 against 0.64 ms.
    // Auto-vectorised array code got no further: LLVM packed the 2×2 scatter tiles
    // across accumulators (shuffles, half-width FMAs) rather than along points.
    impl Simd for Avx2 {
        type V = __m256d;
        #[inline(always)]
        fn splat(self, x: f64) -> Self::V {
            unsafe { _mm256_set1_pd(x) }
        }
        #[inline(always)]
        fn load(self, s: &[f64]) -> Self::V {
            let s = &s[..WIDTH];
            unsafe { _mm256_loadu_pd(s.as_ptr()) }
        }
        #[inline(always)]
        fn store(self, s: &mut [f64], v: Self::V) {
            let s = &mut s[..WIDTH];
            unsafe { _mm256_storeu_pd(s.as_mut_ptr(), v) }
        }
        #[inline(always)]
        fn add(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm256_add_pd(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm256_sub_pd(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm256_mul_pd(a, b) }
        }
        #[inline(always)]
        fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            unsafe { _mm256_fmadd_pd(a, b, c) }
        }
        #[inline(always)]
        fn sum(self, v: Self::V) -> f64 {
            unsafe {
                // [v0 + v1, v0 + v1, v2 + v3, v2 + v3]
                let h = _mm256_hadd_pd(v, v);
                _mm_cvtsd_f64(_mm_add_sd(
                    _mm256_castpd256_pd128(h),
                    _mm256_extractf128_pd(h, 1),
                ))
            }
        }
        #[inline(always)]
        fn sum4(self, [a, b, c, d]: [Self::V; 4]) -> [f64; 4] {
            unsafe {
                // [a0 + a1, b0 + b1, a2 + a3, b2 + b3] and the same for c, d.
                let ab = _mm256_hadd_pd(a, b);
                let cd = _mm256_hadd_pd(c, d);
                let lo = _mm256_permute2f128_pd(ab, cd, 0x20);
                let hi = _mm256_permute2f128_pd(ab, cd, 0x31);
                let mut out = [0.0; 4];
                _mm256_storeu_pd(out.as_mut_ptr(), _mm256_add_pd(lo, hi));
                out
            }
        }
        #[inline(always)]
        fn zero_unless_ge(self, test: Self::V, t: Self::V, v: Self::V) -> Self::V {
            unsafe { _mm256_and_pd(_mm256_cmp_pd(test, t, _CMP_GE_OQ), v) }
        }
        #[inline(always)]
        fn max(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm256_max_pd(a, b) }
        }
        #[inline(always)]
        fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            unsafe { with_avx2(f) }
        }
        #[inline(always)]
        fn select_ge(self, test: Self::V, t: Self::V, v: Self::V, otherwise: Self::V) -> Self::V {
            unsafe { _mm256_blendv_pd(otherwise, v, _mm256_cmp_pd(test, t, _CMP_GE_OQ)) }
        }
        #[inline(always)]
        fn div(self, a: Self::V, b: Self::V) -> Self::V {
            unsafe { _mm256_div_pd(a, b) }
        }
        #[inline(always)]
        fn sqrt(self, a: Self::V) -> Self::V {
            unsafe { _mm256_sqrt_pd(a) }
        }
        #[inline(always)]
        fn ln(self, x: Self::V) -> Self::V {
            let (e, m) = unsafe {
                let bits = _mm256_castpd_si256(x);
                // The biased exponent E, as the double 2^52 + E, less 2^52 + 1023.
                let biased = _mm256_or_si256(
                    _mm256_srli_epi64(bits, 52),
                    _mm256_set1_epi64x(TWO_52_BITS as i64),
                );
                let e = _mm256_sub_pd(
                    _mm256_castsi256_pd(biased),
                    _mm256_set1_pd(f64::from_bits(TWO_52_BITS) + 1023.0),
                );
                let m = _mm256_or_si256(
                    _mm256_and_si256(bits, _mm256_set1_epi64x(MANTISSA as i64)),
                    _mm256_set1_epi64x(ONE_BITS as i64),
                );
                (e, _mm256_castsi256_pd(m))
            };
            ln_reduced(self, e, m)
        }
        #[inline(always)]
        fn exp(self, x: Self::V) -> Self::V {
            let (t, r) = exp_reduce(self, x);
            let p = exp_poly(self, r);
            unsafe {
                // t = MAGIC + n holds 2^51 + n in its low mantissa bits: adding the
                // exponent bias and shifting it into the exponent field gives 2^n.
                let bits = _mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(1023));
                let scale = _mm256_castsi256_pd(_mm256_slli_epi64(bits, 52));
                _mm256_mul_pd(p, scale)
            }
        }
    }
}

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
/// `(start, false)` for a last group of two (bp is a whole number of [`LANES`]).
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
    for (start, wide) in tiles(bp) {
        if wide {
            let q = sum_sq_tile::<S, TILE_VECS>(s, z, bp, start, f);
            store_log_prob(s, c, &q, &mut lp[start..]);
        } else {
            let q = sum_sq_tile::<S, 2>(s, z, bp, start, f);
            store_log_prob(s, c, &q, &mut lp[start..]);
        }
    }
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
    for (start, wide) in tiles(bp) {
        if wide {
            let q = sum_sq_tile::<S, TILE_VECS>(s, xt, bp, start, f);
            store_log_prob(s, c, &q, &mut lp[start..]);
        } else {
            let q = sum_sq_tile::<S, 2>(s, xt, bp, start, f);
            store_log_prob(s, c, &q, &mut lp[start..]);
        }
    }
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
    for (start, wide) in tiles(bp) {
        // (q p) p, as q·p·p reads. Plain loops, not `array::map`: a closure through
        // the standard library may not inline into the target-feature function.
        if wide {
            let mut q = sum_sq_tile::<S, TILE_VECS>(s, xt, bp, start, f);
            for q in &mut q {
                *q = s.mul(s.mul(*q, p), p);
            }
            store_log_prob(s, c, &q, &mut lp[start..]);
        } else {
            let mut q = sum_sq_tile::<S, 2>(s, xt, bp, start, f);
            for q in &mut q {
                *q = s.mul(s.mul(*q, p), p);
            }
            store_log_prob(s, c, &q, &mut lp[start..]);
        }
    }
}

/// `ln f64::MIN_POSITIVE`, rounded up: `exp` of anything smaller is subnormal.
pub(crate) const LN_MIN_POSITIVE: f64 = -708.396_418_532_264;

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

    #[test]
    fn vector_exp_is_accurate() {
        let check = |x: f64| {
            let got = Portable.exp([x; WIDTH])[0];
            let want = x.exp();
            let err = (got - want).abs() / want;
            assert!(err <= 4.0 * f64::EPSILON, "exp({x}): {got:e} vs {want:e}");
            #[cfg(target_arch = "x86_64")]
            if let Some(avx2) = Avx2::detect() {
                let mut out = [0.0; WIDTH];
                avx2.store(&mut out, avx2.exp(avx2.splat(x)));
                let err = (out[0] - want).abs() / want;
                assert!(
                    err <= 4.0 * f64::EPSILON,
                    "avx2 exp({x}): {:e} vs {want:e}",
                    out[0]
                );
            }
        };
        for i in 0..=200_000 {
            check(LN_MIN_POSITIVE * i as f64 / 200_000.0);
        }
        for x in [
            0.0,
            -1e-300,
            -0.5 * std::f64::consts::LN_2,
            -1.0,
            -700.0,
            LN_MIN_POSITIVE,
        ] {
            check(x);
        }
        assert_eq!(Portable.exp([0.0; WIDTH]), [1.0; WIDTH]);
    }

    #[test]
    fn vector_ln_is_accurate() {
        let check = |x: f64| {
            let want = x.ln();
            let tol = 4.0 * f64::EPSILON * want.abs().max(f64::MIN_POSITIVE);
            let got = Portable.ln([x; WIDTH])[0];
            assert!((got - want).abs() <= tol, "ln({x}): {got:e} vs {want:e}");
            #[cfg(target_arch = "x86_64")]
            if let Some(avx2) = Avx2::detect() {
                let mut out = [0.0; WIDTH];
                avx2.store(&mut out, avx2.ln(avx2.splat(x)));
                assert!(
                    (out[0] - want).abs() <= tol,
                    "avx2 ln({x}): {:e} vs {want:e}",
                    out[0]
                );
            }
        };
        // Sums of responsibilities lie in [1, K]; the rest for good measure.
        for i in 0..=200_000 {
            check(1.0 + i as f64 * 1e-4);
        }
        for x in [
            1.0,
            1.0 + f64::EPSILON,
            1.5,
            2.0,
            1000.0,
            1e300,
            1e-300,
            f64::MIN_POSITIVE,
        ] {
            check(x);
        }
        assert_eq!(Portable.ln([1.0; WIDTH]), [0.0; WIDTH]);
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
