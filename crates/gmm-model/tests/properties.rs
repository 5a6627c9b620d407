//! Properties of the numerical core that must hold for every valid mixture and every
//! data set, checked on random ones.
//!
//! Proptest draws the structure (covariance type, K, d, n, where to split) and a seed;
//! the numbers themselves come from a ChaCha generator seeded with it. That keeps the
//! strategies readable while shrinking still reduces K, d and n towards the smallest
//! failing shape; a failure prints the seed, so it reproduces exactly.
//!
//! Reference values here are computed independently of the library, the plain way
//! (nalgebra Cholesky and inverse, explicit sums over points), which is fine for the
//! small d used.

use gmm_model::{
    em_step, fit, initial_stats, m_step, points_from_rows, CovarianceType, Covariances, EmSettings,
    EvalRequest, GaussianMixture, InitMethod, ModelError, Prior, Scatter, Start, SufficientStats,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

type Check = Result<(), TestCaseError>;

fn cov_type_strategy() -> impl Strategy<Value = CovarianceType> {
    prop::sample::select(CovarianceType::ALL.to_vec())
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// A random SPD matrix `s (A Aᵀ / d + ε I)`: condition numbers up to a few hundred,
/// overall scale `s` between 0.1 and 10.
fn random_spd(rng: &mut ChaCha8Rng, d: usize) -> DMatrix<f64> {
    let a = DMatrix::from_fn(d, d, |_, _| normal(rng));
    let eps = rng.random_range(0.01..0.5);
    let s = 10f64.powf(rng.random_range(-1.0..1.0));
    let m = (&a * a.transpose() / d as f64 + DMatrix::identity(d, d) * eps) * s;
    // Exactly symmetric, as a covariance is.
    (&m + m.transpose()) * 0.5
}

/// A random valid mixture, and the full d×d covariance of every component as the
/// test built it (the reference computations use these, not the library's).
struct Mixture {
    model: GaussianMixture,
    weights: Vec<f64>,
    means: Vec<DVector<f64>>,
    full: Vec<DMatrix<f64>>,
}

fn random_mixture(rng: &mut ChaCha8Rng, cov_type: CovarianceType, k: usize, d: usize) -> Mixture {
    let mut weights: Vec<f64> = (0..k).map(|_| rng.random_range(0.05..1.0)).collect();
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    let means: Vec<DVector<f64>> = (0..k)
        .map(|_| DVector::from_fn(d, |_, _| 3.0 * normal(rng)))
        .collect();
    let (covariances, full) = match cov_type {
        CovarianceType::Full => {
            let m: Vec<DMatrix<f64>> = (0..k).map(|_| random_spd(rng, d)).collect();
            (Covariances::Full(m.clone()), m)
        }
        CovarianceType::Tied => {
            let m = random_spd(rng, d);
            (Covariances::Tied(m.clone()), vec![m; k])
        }
        CovarianceType::Diag => {
            let v = DMatrix::from_fn(d, k, |_, _| 10f64.powf(rng.random_range(-1.0..1.0)));
            let full = (0..k)
                .map(|c| DMatrix::from_diagonal(&v.column(c).into_owned()))
                .collect();
            (Covariances::Diag(v), full)
        }
        CovarianceType::Spherical => {
            let v = DVector::from_fn(k, |_, _| 10f64.powf(rng.random_range(-1.0..1.0)));
            let full = (0..k).map(|c| DMatrix::identity(d, d) * v[c]).collect();
            (Covariances::Spherical(v), full)
        }
    };
    let mut mean_matrix = DMatrix::zeros(d, k);
    for (c, m) in means.iter().enumerate() {
        mean_matrix.set_column(c, m);
    }
    let model = GaussianMixture::new(DVector::from_vec(weights.clone()), mean_matrix, covariances)
        .expect("a valid random mixture");
    Mixture {
        model,
        weights,
        means,
        full,
    }
}

/// n points, row-major: most drawn from the mixture, some spread three times wider
/// and a few far out in the tails, where the log-sum-exp matters.
fn random_points(rng: &mut ChaCha8Rng, mix: &Mixture, n: usize, offset: f64) -> Vec<f64> {
    let d = mix.model.n_features();
    let (x, _) = mix.model.sample(n, rng);
    let mut flat = Vec::with_capacity(n * d);
    for j in 0..n {
        let stretch = match j % 10 {
            0 => 3.0,
            1 => 8.0,
            _ => 1.0,
        };
        flat.extend((0..d).map(|i| offset + stretch * x[(i, j)]));
    }
    flat
}

/// `ln π_k + ln N(x | μ_k, Σ_k)` for every k, the textbook way.
fn reference_weighted_log_probs(mix: &Mixture, x: &DVector<f64>) -> Vec<f64> {
    let d = x.len() as f64;
    (0..mix.weights.len())
        .map(|k| {
            let chol = nalgebra::Cholesky::new(mix.full[k].clone()).expect("SPD");
            let log_det: f64 = 2.0 * chol.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
            let diff = x - &mix.means[k];
            let q = (diff.transpose() * chol.inverse() * &diff)[(0, 0)];
            mix.weights[k].ln() - 0.5 * (d * (2.0 * std::f64::consts::PI).ln() + log_det + q)
        })
        .collect()
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// |got − want| ≤ tol · max(|want|, scale), with a message naming the entry.
fn close(what: &str, got: f64, want: f64, scale: f64, tol: f64) -> Check {
    // Equal values pass even where the scale is 0 (an empty statistic's scatter).
    let err = if got == want {
        0.0
    } else {
        (got - want).abs() / want.abs().max(scale)
    };
    prop_assert!(
        err <= tol,
        "{what}: got {got:e}, want {want:e}, relative error {err:e} > {tol:e}"
    );
    Ok(())
}

/// Random responsibilities (K×n, columns sum to 1): mostly soft, every fifth point
/// one-hot, so exact zeros occur too. Every component keeps some weight.
fn random_responsibilities(rng: &mut ChaCha8Rng, k: usize, n: usize) -> DMatrix<f64> {
    let mut r = DMatrix::from_fn(k, n, |_, _| rng.random_range(0.0..1.0f64).powi(3));
    for (j, mut col) in r.column_iter_mut().enumerate() {
        if j % 5 == 0 {
            col.fill(0.0);
            col[j / 5 % k] = 1.0;
        }
        let s = col.sum();
        col /= s;
    }
    r
}

/// Compares two statistics entry by entry: weights relative to the largest weight,
/// means relative to max(|m|, 1) (the data have unit-order spread), scatter entries
/// relative to sqrt(S_ii S_jj) (their own scale; variances purely relative).
fn stats_close(what: &str, got: &SufficientStats, want: &SufficientStats, tol: f64) -> Check {
    let w_scale = want.weights().amax();
    for (k, (&a, &b)) in got.weights().iter().zip(want.weights().iter()).enumerate() {
        close(&format!("{what}: weights[{k}]"), a, b, w_scale, tol)?;
    }
    let (d, k_count) = want.means().shape();
    for k in 0..k_count {
        for i in 0..d {
            let (a, b) = (got.means()[(i, k)], want.means()[(i, k)]);
            close(&format!("{what}: means[{k}][{i}]"), a, b, 1.0, tol)?;
        }
    }
    match (got.scatter(), want.scatter()) {
        (Scatter::Full(a), Scatter::Full(b)) => {
            for k in 0..k_count {
                matrix_close(&format!("{what}: scatter[{k}]"), &a[k], &b[k], tol)?;
            }
        }
        (Scatter::Tied(a), Scatter::Tied(b)) => {
            matrix_close(&format!("{what}: scatter"), a, b, tol)?
        }
        (Scatter::Diag(a), Scatter::Diag(b)) => {
            for k in 0..k_count {
                for i in 0..d {
                    let (x, y) = (a[(i, k)], b[(i, k)]);
                    close(&format!("{what}: scatter[{k}][{i}]"), x, y, y.abs(), tol)?;
                }
            }
        }
        (Scatter::Spherical(a), Scatter::Spherical(b)) => {
            for k in 0..k_count {
                close(
                    &format!("{what}: scatter[{k}]"),
                    a[k],
                    b[k],
                    b[k].abs(),
                    tol,
                )?;
            }
        }
        _ => prop_assert!(false, "{what}: scatter layouts differ"),
    }
    Ok(())
}

/// Symmetric (to rounding) and positive definite.
fn check_spd(what: &str, m: &DMatrix<f64>) -> Check {
    let d = m.nrows();
    for i in 0..d {
        for j in 0..i {
            let scale = (m[(i, i)] * m[(j, j)]).sqrt();
            close(
                &format!("{what}: symmetry [{i}][{j}]"),
                m[(i, j)],
                m[(j, i)],
                scale,
                1e-12,
            )?;
        }
    }
    let min_eig = nalgebra::SymmetricEigen::new(m.clone()).eigenvalues.min();
    prop_assert!(min_eig > 0.0, "{what}: smallest eigenvalue {min_eig:e}");
    prop_assert!(
        nalgebra::Cholesky::new(m.clone()).is_some(),
        "{what}: no Cholesky factor"
    );
    Ok(())
}

/// Cases per property: modest by default so the suite runs in seconds; set
/// `PROPTEST_CASES` for a deeper search (an explicit `with_cases` would otherwise
/// ignore it).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The structure of one random problem.
#[derive(Clone, Debug)]
struct Shape {
    cov_type: CovarianceType,
    k: usize,
    d: usize,
    n: usize,
    seed: u64,
}

/// d up to 7 so that both the loop and the gemm paths (d ≥ 6) of the kernels run.
fn shape(
    max_k: usize,
    max_d: usize,
    n: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Shape> {
    (cov_type_strategy(), 1..=max_k, 1..=max_d, n, any::<u64>()).prop_map(
        |(cov_type, k, d, n, seed)| Shape {
            cov_type,
            k,
            d,
            n,
            seed,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn responsibilities_are_probabilities(s in shape(4, 7, 1..=60)) {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, s.n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        let resp = mix.model.predict_proba(x).unwrap();
        prop_assert_eq!(resp.shape(), (s.k, s.n));
        let labels = mix.model.predict(x).unwrap();
        for j in 0..s.n {
            let col = resp.column(j);
            for k in 0..s.k {
                prop_assert!((0.0..=1.0).contains(&col[k]), "resp[{k}][{j}] = {}", col[k]);
            }
            let sum = col.sum();
            prop_assert!((sum - 1.0).abs() <= 1e-12 * s.k as f64, "point {j}: responsibilities sum to {sum}");
            // predict is the most responsible component (ties resolved either way).
            prop_assert_eq!(col[labels[j]], col.max(), "point {}", j);
        }
    }

    #[test]
    fn score_samples_and_responsibilities_match_the_direct_formula(s in shape(4, 7, 1..=40)) {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, s.n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        let eval = mix.model.evaluate(x, EvalRequest::ALL).unwrap();
        let mut total = 0.0;
        for j in 0..s.n {
            let lp = reference_weighted_log_probs(&mix, &x.column(j).into_owned());
            let want = log_sum_exp(&lp);
            total += want;
            close(&format!("log_density[{j}]"), eval.log_density[j], want, 1.0, 1e-9)?;
            for (k, l) in lp.iter().enumerate() {
                let want_r = (l - want).exp();
                let got_r = eval.responsibilities[(k, j)];
                prop_assert!((got_r - want_r).abs() <= 1e-9, "resp[{k}][{j}]: {got_r} vs {want_r}");
            }
        }
        close("log_likelihood", eval.log_likelihood, total, s.n as f64, 1e-9)?;
        let direct = mix.model.score_samples(x).unwrap();
        prop_assert_eq!(direct, eval.log_density);
    }

    #[test]
    fn m_step_gives_weights_summing_to_one_and_spd_covariances(
        s in shape(4, 7, 2..=80),
        reg_choice in 0usize..3,
        with_prior in any::<bool>(),
    ) {
        let reg_covar = [0.0, 1e-6, 1e-3][reg_choice];
        // More points than dimensions: with fewer, a covariance without prior or
        // regularisation is singular (the scatter has rank < d) and the prior's
        // scale, the data covariance, is too.
        let n = s.n + s.d + 1;
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        let resp = random_responsibilities(&mut rng, s.k, n);
        let stats = SufficientStats::from_responsibilities(s.cov_type, x, &resp).unwrap();
        let prior = with_prior.then(|| Prior::from_data(x, s.k, s.cov_type).unwrap());
        // Without a prior or regularisation a covariance may still be numerically
        // singular by chance: refusing it is legitimate, accepting a bad one is not.
        let result = m_step(&stats, reg_covar, prior.as_ref(), None);
        let model = match result {
            Ok(m) => m,
            Err(e) => {
                prop_assert!(prior.is_none() && reg_covar == 0.0, "m_step failed: {e}");
                return Ok(());
            }
        };
        let wsum = model.weights().sum();
        prop_assert!((wsum - 1.0).abs() <= 1e-12, "weights sum to {wsum}");
        prop_assert!(model.weights().iter().all(|&w| w >= 0.0));
        for k in 0..s.k {
            check_spd(&format!("covariance {k}"), &model.covariances().component_matrix(k, s.d))?;
        }
    }

    #[test]
    fn ml_m_step_matches_the_weighted_formulas(
        s in shape(4, 7, 2..=80),
        reg_choice in 0usize..2,
    ) {
        // Enough points that no covariance is singular.
        let n = s.n + 2 * s.d;
        let reg_covar = [1e-6, 1e-2][reg_choice];
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        let resp = random_responsibilities(&mut rng, s.k, n);
        let stats = SufficientStats::from_responsibilities(s.cov_type, x, &resp).unwrap();
        let model = m_step(&stats, reg_covar, None, None).unwrap();
        let d = s.d;
        let nk: Vec<f64> = (0..s.k).map(|k| resp.row(k).sum()).collect();
        let mut tied = DMatrix::zeros(d, d);
        for k in 0..s.k {
            close(&format!("weights[{k}]"), model.weights()[k], nk[k] / n as f64, 1.0 / s.k as f64, 1e-12)?;
            let mean = (0..n).fold(DVector::zeros(d), |acc, j| acc + x.column(j) * resp[(k, j)]) / nk[k];
            let scatter = (0..n).fold(DMatrix::zeros(d, d), |acc, j| {
                let c = x.column(j) - &mean;
                acc + &c * c.transpose() * resp[(k, j)]
            });
            tied += &scatter;
            let cov = &scatter / nk[k];
            for i in 0..d {
                let sd = cov[(i, i)].sqrt();
                close(&format!("means[{k}][{i}]"), model.means()[(i, k)], mean[i], sd, 1e-10)?;
            }
            let want = match s.cov_type {
                CovarianceType::Full => cov + DMatrix::identity(d, d) * reg_covar,
                CovarianceType::Diag => DMatrix::from_diagonal(&cov.diagonal().add_scalar(reg_covar)),
                CovarianceType::Spherical => DMatrix::identity(d, d) * (cov.trace() / d as f64 + reg_covar),
                // Checked below, once the pooled scatter is complete.
                CovarianceType::Tied => continue,
            };
            matrix_close(&format!("covariance[{k}]"), &model.covariances().component_matrix(k, d), &want, 1e-10)?;
        }
        if s.cov_type == CovarianceType::Tied {
            let want = tied / n as f64 + DMatrix::identity(d, d) * reg_covar;
            matrix_close("tied covariance", &model.covariances().component_matrix(0, d), &want, 1e-10)?;
        }
    }

    #[test]
    fn merging_two_halves_gives_the_statistics_of_the_union(
        s in shape(4, 7, 0..=300),
        split in 0.0..=1.0f64,
        far in any::<bool>(),
    ) {
        let offset = if far { 1e3 } else { 0.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, s.n, offset);
        let x = points_from_rows(&flat, s.d).unwrap();
        let resp = random_responsibilities(&mut rng, s.k, s.n);
        let at = (split * s.n as f64).round() as usize;
        let part = |from: usize, to: usize| {
            SufficientStats::from_responsibilities(
                s.cov_type,
                x.columns(from, to - from),
                &resp.columns(from, to - from).into_owned(),
            )
            .unwrap()
        };
        let whole = part(0, s.n);
        let mut merged = part(0, at);
        merged.merge(&part(at, s.n)).unwrap();
        stats_close(&format!("split at {at} of {}", s.n), &merged, &whole, 1e-10)?;
        close("total weight", merged.total_weight(), resp.sum(), 1.0, 1e-12)?;
    }

    #[test]
    fn merge_is_associative(
        s in shape(4, 7, 3..=200),
        cuts in (0.0..=1.0f64, 0.0..=1.0f64),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, s.n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        let resp = random_responsibilities(&mut rng, s.k, s.n);
        let (c1, c2) = (cuts.0.min(cuts.1), cuts.0.max(cuts.1));
        let (i, j) = ((c1 * s.n as f64) as usize, (c2 * s.n as f64) as usize);
        let part = |from: usize, to: usize| {
            SufficientStats::from_responsibilities(
                s.cov_type,
                x.columns(from, to - from),
                &resp.columns(from, to - from).into_owned(),
            )
            .unwrap()
        };
        let (a, b, c) = (part(0, i), part(i, j), part(j, s.n));
        let mut left = a.clone();
        left.merge(&b).unwrap();
        left.merge(&c).unwrap();
        let mut bc = b.clone();
        bc.merge(&c).unwrap();
        let mut right = a.clone();
        right.merge(&bc).unwrap();
        stats_close("(a+b)+c vs a+(b+c)", &left, &right, 1e-10)?;
    }

    #[test]
    fn scaling_twice_is_scaling_by_the_product(
        s in shape(4, 7, 1..=100),
        a in 1e-3..2.0f64,
        b in 1e-3..2.0f64,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, s.n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        let resp = random_responsibilities(&mut rng, s.k, s.n);
        let stats = SufficientStats::from_responsibilities(s.cov_type, x, &resp).unwrap();
        let mut twice = stats.clone();
        twice.scale(a);
        twice.scale(b);
        let mut once = stats.clone();
        once.scale(a * b);
        // (v·a)·b and v·(a·b) differ by a few roundings at most.
        stats_close("scale(a).scale(b) vs scale(a*b)", &twice, &once, 1e-15)?;
        // Forgetting changes the weight, never the location.
        prop_assert_eq!(twice.means(), stats.means());
        close("total weight", once.total_weight(), a * b * stats.total_weight(), 1.0, 1e-14)?;
    }

    #[test]
    fn em_never_lowers_the_log_likelihood(
        s in shape(3, 4, 40..=200),
        true_k in 1usize..=4,
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, true_k, s.d);
        let n = s.n * s.k;
        let flat = random_points(&mut rng, &mix, n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        // reg_covar = 0: exact maximum likelihood, for which EM is monotone. (With
        // reg_covar > 0 the M-step is not the maximiser of any fixed objective, since
        // its implied penalty scales with n_k, and the bound may dip slightly.)
        // Random responsibilities start every component on all the points.
        let stats = initial_stats(x, s.k, s.cov_type, InitMethod::Random, &mut rng, 0.0).unwrap();
        let start = m_step(&stats, 0.0, None, None).unwrap();
        // Without regularisation a component may collapse onto a few points, where
        // the likelihood is unbounded and the M-step rightly refuses the singular
        // covariance; up to that point the bound must still never fall.
        let mut model = start.clone();
        let mut bounds = Vec::new();
        for _ in 0..30 {
            match em_step(&model, x, 0.0, None) {
                Ok((next, ll)) => {
                    bounds.push(ll);
                    model = next;
                }
                Err(ModelError::IllDefinedCovariance { .. }) => break,
                Err(e) => return Err(TestCaseError::fail(format!("EM step failed: {e}"))),
            }
        }
        for (i, w) in bounds.windows(2).enumerate() {
            prop_assert!(
                w[1] >= w[0] - 1e-10 * w[0].abs().max(1.0),
                "iteration {}: mean log-likelihood fell from {:e} to {:e}",
                i + 2, w[0], w[1]
            );
        }
        // Batch EM's reported history is exactly this sequence.
        if bounds.len() == 30 {
            let settings = EmSettings {
                covariance_type: s.cov_type,
                max_iter: 30,
                tol: 0.0,
                reg_covar: 0.0,
                start: Start::Model(start),
                ..EmSettings::new(s.k)
            };
            let report = fit(x, &settings, &mut |_| {}).unwrap();
            prop_assert_eq!(&report.history, &bounds);
            prop_assert_eq!(&report.model, &model);
        }
    }

    #[test]
    fn bic_and_aic_follow_their_formulas(s in shape(4, 6, 2..=80)) {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, s.n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        let (k, d) = (s.k, s.d);
        // scikit-learn's _n_parameters, written out again.
        let cov_params = match s.cov_type {
            CovarianceType::Full => k * d * (d + 1) / 2,
            CovarianceType::Diag => k * d,
            CovarianceType::Spherical => k,
            CovarianceType::Tied => d * (d + 1) / 2,
        };
        let p = (cov_params + k * d + k - 1) as f64;
        let log_lik: f64 = (0..s.n)
            .map(|j| log_sum_exp(&reference_weighted_log_probs(&mix, &x.column(j).into_owned())))
            .sum();
        let n = s.n as f64;
        let scale = log_lik.abs().max(1.0);
        close("bic", mix.model.bic(x).unwrap(), -2.0 * log_lik + p * n.ln(), scale, 1e-9)?;
        close("aic", mix.model.aic(x).unwrap(), -2.0 * log_lik + 2.0 * p, scale, 1e-9)?;
        prop_assert_eq!(mix.model.n_parameters(), p as usize);
    }
}

proptest! {
    // Larger inputs (several E-step chunks, run in parallel): fewer cases.
    #![proptest_config(ProptestConfig::with_cases(cases(12)))]

    #[test]
    fn e_step_statistics_equal_those_of_its_responsibilities(s in shape(4, 8, 1..=2600)) {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let mix = random_mixture(&mut rng, s.cov_type, s.k, s.d);
        let flat = random_points(&mut rng, &mix, s.n, 0.0);
        let x = points_from_rows(&flat, s.d).unwrap();
        let eval = mix.model.evaluate(x, EvalRequest::ALL).unwrap();
        let fused = eval.stats.as_ref().unwrap();
        let separate = SufficientStats::from_responsibilities(s.cov_type, x, &eval.responsibilities).unwrap();
        stats_close("E-step statistics vs from_responsibilities", fused, &separate, 1e-10)?;
    }
}

fn matrix_close(what: &str, got: &DMatrix<f64>, want: &DMatrix<f64>, tol: f64) -> Check {
    let d = want.nrows();
    prop_assert_eq!(got.shape(), want.shape());
    for i in 0..d {
        for j in 0..d {
            let scale = (want[(i, i)] * want[(j, j)]).sqrt();
            close(
                &format!("{what}[{i}][{j}]"),
                got[(i, j)],
                want[(i, j)],
                scale,
                tol,
            )?;
        }
    }
    Ok(())
}
