//! The special functions of the variational updates: ψ (digamma) and ln Γ, for
//! positive arguments (every concentration, degree of freedom and half degree of
//! freedom minus an index is positive by the priors' checks).

/// ln Γ(x), from musl's `lgamma` (a few ulps).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b).
pub(crate) fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Below this the recurrence ψ(x) = ψ(x + 1) − 1/x moves x up before the asymptotic
/// series, whose terms to x⁻¹⁴ are then below 1e-17 relative.
const ASYMPTOTIC_FROM: f64 = 10.0;

/// ψ(x) = d ln Γ(x) / dx for x > 0 (NaN otherwise): the recurrence up to
/// [`ASYMPTOTIC_FROM`], then `ln x − 1/(2x) − Σ B₂ₙ / (2n x²ⁿ)`.
pub(crate) fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let mut x = x;
    let mut shift = 0.0;
    while x < ASYMPTOTIC_FROM {
        shift += 1.0 / x;
        x += 1.0;
    }
    let inv2 = 1.0 / (x * x);
    // B₂ₙ / (2n) for n = 1..7.
    let series = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2
                        * (1.0 / 252.0
                            - inv2
                                * (1.0 / 240.0
                                    - inv2
                                        * (1.0 / 132.0
                                            - inv2 * (691.0 / 32760.0 - inv2 / 12.0))))));
    x.ln() - 0.5 / x - series - shift
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from scipy.special.digamma / gammaln (double precision).
    #[test]
    fn agrees_with_known_values() {
        let euler = 0.577_215_664_901_532_9;
        let cases = [
            (1.0, -euler),
            (0.5, -1.963_510_026_021_423_5),
            (1e-3, -1_000.575_571_931_810_3),
            (3.7, 1.167_153_539_361_511_3),
            (12.25, 2.464_154_655_185_369_2),
            (1e6, 13.815_510_057_964_19),
        ];
        for (x, want) in cases {
            let got = digamma(x);
            assert!(
                (got - want).abs() <= 4e-15 * want.abs().max(1.0),
                "ψ({x}) = {got}, want {want}"
            );
        }
        assert!((ln_gamma(0.5) - 0.5 * std::f64::consts::PI.ln()).abs() < 1e-15);
        assert!((ln_beta(2.0, 3.0) - (1.0f64 / 12.0).ln()).abs() < 1e-14);
        assert!(digamma(0.0).is_nan() && digamma(-1.0).is_nan());
    }

    /// ψ(x + 1) = ψ(x) + 1/x across the switch to the asymptotic series.
    #[test]
    fn satisfies_the_recurrence() {
        for i in 1..400 {
            let x = i as f64 * 0.05;
            let lhs = digamma(x + 1.0);
            let rhs = digamma(x) + 1.0 / x;
            assert!((lhs - rhs).abs() <= 1e-14 * lhs.abs().max(1.0), "x = {x}");
        }
    }
}
