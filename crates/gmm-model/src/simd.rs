//! Vectors of [`WIDTH`] f64 for the E-step kernels: the [`Simd`] trait, its
//! [`Portable`] and AVX2/FMA ([`Avx2`]) implementations, and the vectorised `exp` and
//! `ln` both share.
//!
//! Every kernel is generic over [`Simd`] and `#[inline(always)]`, so the E-step can
//! instantiate it once for AVX2/FMA (selected at run time, see [`Avx2`]) and once
//! portably. Kept apart from the kernels because it holds all their intrinsics and
//! `unsafe` code and everything that depends on the target; the kernels are safe
//! code written once.

/// f64 per vector: one AVX2 register. ([`Portable`] spells out its four lanes.)
pub(crate) const WIDTH: usize = 4;

/// Points per lane group: two vectors, so that sums along points run as two
/// independent chains. Blocks are padded to a whole number of lane groups.
pub(crate) const LANES: usize = 2 * WIDTH;

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

/// `ln f64::MIN_POSITIVE`, rounded up: `exp` of anything smaller is subnormal.
pub(crate) const LN_MIN_POSITIVE: f64 = -708.396_418_532_264;

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
        let mut v = [0.0; WIDTH];
        v.copy_from_slice(&s[..WIDTH]);
        v
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
