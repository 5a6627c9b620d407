//! The E-step kernel (`evaluate` with every output requested) against a plain
//! reference written out here: per point and component a Cholesky solve, log-sum-exp,
//! responsibilities, and two-pass weighted means and scatters.
//!
//! Every covariance type, d in {1, 2, 5, 6, 9, 16} (scalar tails, odd d, several
//! register tiles), point counts that leave a partial chunk and a partial block, and
//! the same data moved 1e6 from the origin, where any `E[x²] − E[x]²` shortcut would
//! lose ten digits. Also: a model far from its data (the statistics cannot be formed
//! about the model's means), components that weigh nothing in whole chunks, and
//! bit-identical results on one and on two threads.

use gmm_model::{CovarianceType, Covariances, EvalRequest, Evaluation, GaussianMixture, Scatter};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const TOL: f64 = 1e-10;

struct Case {
    model: GaussianMixture,
    weights: Vec<f64>,
    means: Vec<DVector<f64>>,
    /// Every component's covariance as a full matrix.
    covs: Vec<DMatrix<f64>>,
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

fn random_spd(rng: &mut ChaCha8Rng, d: usize) -> DMatrix<f64> {
    let a = DMatrix::from_fn(d, d, |_, _| normal(rng));
    let m = &a * a.transpose() / d as f64 + DMatrix::identity(d, d) * 0.2;
    (&m + m.transpose()) * 0.5
}

/// A mixture with means `spread` apart (in units of the covariances' scale) around
/// `centre` in every coordinate.
fn case(
    rng: &mut ChaCha8Rng,
    cov_type: CovarianceType,
    k: usize,
    d: usize,
    centre: f64,
    spread: f64,
) -> Case {
    let mut weights: Vec<f64> = (0..k).map(|_| rng.random_range(0.2..1.0)).collect();
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    let means: Vec<DVector<f64>> = (0..k)
        .map(|_| DVector::from_fn(d, |_, _| centre + spread * normal(rng)))
        .collect();
    let (covariances, covs) = match cov_type {
        CovarianceType::Full => {
            let m: Vec<DMatrix<f64>> = (0..k).map(|_| random_spd(rng, d)).collect();
            (Covariances::Full(m.clone()), m)
        }
        CovarianceType::Tied => {
            let m = random_spd(rng, d);
            (Covariances::Tied(m.clone()), vec![m; k])
        }
        CovarianceType::Diag => {
            let v = DMatrix::from_fn(d, k, |_, _| rng.random_range(0.3..3.0));
            let full = (0..k)
                .map(|c| DMatrix::from_diagonal(&v.column(c).into_owned()))
                .collect();
            (Covariances::Diag(v), full)
        }
        CovarianceType::Spherical => {
            let v = DVector::from_fn(k, |_, _| rng.random_range(0.3..3.0));
            let full = (0..k).map(|c| DMatrix::identity(d, d) * v[c]).collect();
            (Covariances::Spherical(v), full)
        }
    };
    let mut means_m = DMatrix::zeros(d, k);
    for (c, m) in means.iter().enumerate() {
        means_m.set_column(c, m);
    }
    let model = GaussianMixture::new(DVector::from_vec(weights.clone()), means_m, covariances)
        .expect("a valid mixture");
    Case {
        model,
        weights,
        means,
        covs,
    }
}

struct Reference {
    log_likelihood: f64,
    log_density: Vec<f64>,
    resp: DMatrix<f64>,
    n: Vec<f64>,
    means: Vec<DVector<f64>>,
    scatters: Vec<DMatrix<f64>>,
}

fn reference(c: &Case, x: &DMatrix<f64>) -> Reference {
    let (d, n) = x.shape();
    let k = c.weights.len();
    let half_log_2pi = 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
    let mut lp = DMatrix::zeros(k, n);
    for comp in 0..k {
        let l = c.covs[comp].clone().cholesky().expect("SPD").l();
        let log_det: f64 = l.diagonal().iter().map(|v| v.ln()).sum();
        for j in 0..n {
            let y = l
                .solve_lower_triangular(&(x.column(j) - &c.means[comp]))
                .expect("invertible");
            lp[(comp, j)] = c.weights[comp].ln() - half_log_2pi - log_det - 0.5 * y.norm_squared();
        }
    }
    let mut log_density = Vec::with_capacity(n);
    let mut resp = DMatrix::zeros(k, n);
    for j in 0..n {
        let col = lp.column(j);
        let max = col.max();
        let lse = max + col.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        log_density.push(lse);
        for comp in 0..k {
            resp[(comp, j)] = (lp[(comp, j)] - lse).exp();
        }
    }
    let mut ns = Vec::new();
    let mut means = Vec::new();
    let mut scatters = Vec::new();
    for comp in 0..k {
        let r = resp.row(comp);
        let nk: f64 = r.iter().sum();
        // Two passes: a first mean, then its correction from the centred points.
        let mut mean = DVector::zeros(d);
        let mut scatter = DMatrix::zeros(d, d);
        if nk > 0.0 {
            for j in 0..n {
                mean += x.column(j) * r[j];
            }
            mean /= nk;
            let mut corr = DVector::zeros(d);
            for j in 0..n {
                corr += (x.column(j) - &mean) * r[j];
            }
            mean += corr / nk;
            for j in 0..n {
                let dv = x.column(j) - &mean;
                scatter += &dv * dv.transpose() * r[j];
            }
        }
        ns.push(nk);
        means.push(mean);
        scatters.push(scatter);
    }
    Reference {
        log_likelihood: log_density.iter().sum(),
        log_density,
        resp,
        n: ns,
        means,
        scatters,
    }
}

/// The worst error in units of the tolerance, with what it was.
struct Worst(f64, String);

impl Worst {
    fn check(&mut self, got: f64, want: f64, scale: f64, what: impl FnOnce() -> String) {
        let err = if got == want {
            0.0
        } else {
            (got - want).abs() / (TOL * scale)
        };
        // A NaN anywhere is as bad as it gets.
        let err = if err.is_nan() { f64::INFINITY } else { err };
        if err > self.0 {
            self.0 = err;
            self.1 = format!("{}: got {got:e}, want {want:e}", what());
        }
    }
}

fn compare(c: &Case, x: &DMatrix<f64>, eval: &Evaluation, label: &str) {
    let want = reference(c, x);
    let (d, n) = x.shape();
    let k = c.weights.len();
    let mut worst = Worst(0.0, String::new());
    worst.check(
        eval.log_likelihood,
        want.log_likelihood,
        want.log_likelihood.abs(),
        || "log-likelihood".into(),
    );
    for j in 0..n {
        let w = want.log_density[j];
        worst.check(eval.log_density[j], w, w.abs().max(1.0), || {
            format!("log density {j}")
        });
        for comp in 0..k {
            worst.check(
                eval.responsibilities[(comp, j)],
                want.resp[(comp, j)],
                1.0,
                || format!("responsibility ({comp}, {j})"),
            );
        }
    }
    let stats = eval.stats.as_ref().expect("statistics were requested");
    let total_n: f64 = want.n.iter().sum();
    let weighty = |comp: usize| want.n[comp] >= 1e-6 * total_n;
    for comp in 0..k {
        worst.check(stats.weights()[comp], want.n[comp], total_n, || {
            format!("weight {comp}")
        });
        if !weighty(comp) {
            // A mean of (almost) nothing is ill-conditioned in both computations.
            continue;
        }
        let s = &want.scatters[comp];
        for i in 0..d {
            // Means to 1e-10 of the spread, above what f64 can hold at that magnitude.
            let sd = (s[(i, i)] / want.n[comp]).sqrt();
            let m = want.means[comp][i];
            let scale = sd + 4.0 * f64::EPSILON * m.abs() / TOL;
            worst.check(stats.means()[(i, comp)], m, scale, || {
                format!("mean ({i}) of component {comp}")
            });
        }
    }
    // Scatter entries to 1e-10 of sqrt(M2_ii M2_ll); where the scatter itself is (near)
    // zero, as for a single point, to 1e-16 of n·σ² under the model.
    let floor = |comp: usize, n: f64, i: usize, l: usize| {
        1e-6 * n * (c.covs[comp][(i, i)] * c.covs[comp][(l, l)]).sqrt()
    };
    let sym_scale = |m: &DMatrix<f64>, i: usize, l: usize| (m[(i, i)] * m[(l, l)]).sqrt();
    match stats.scatter() {
        Scatter::Full(m) => {
            for comp in (0..k).filter(|&c| weighty(c)) {
                for i in 0..d {
                    for l in 0..d {
                        let w = &want.scatters[comp];
                        let scale = sym_scale(w, i, l).max(floor(comp, want.n[comp], i, l));
                        worst.check(m[comp][(i, l)], w[(i, l)], scale, || {
                            format!("scatter ({i}, {l}) of component {comp}")
                        });
                    }
                }
            }
        }
        Scatter::Tied(m) => {
            let w: DMatrix<f64> = want.scatters.iter().sum();
            for i in 0..d {
                for l in 0..d {
                    let scale = sym_scale(&w, i, l).max(floor(0, total_n, i, l));
                    worst.check(m[(i, l)], w[(i, l)], scale, || {
                        format!("tied scatter ({i}, {l})")
                    });
                }
            }
        }
        Scatter::Diag(m) => {
            for comp in (0..k).filter(|&c| weighty(c)) {
                for i in 0..d {
                    let w = want.scatters[comp][(i, i)];
                    let scale = w.max(floor(comp, want.n[comp], i, i));
                    worst.check(m[(i, comp)], w, scale, || {
                        format!("diag scatter ({i}) of component {comp}")
                    });
                }
            }
        }
        Scatter::Spherical(v) => {
            for comp in (0..k).filter(|&c| weighty(c)) {
                let w = want.scatters[comp].trace();
                let scale = w.max(floor(comp, want.n[comp], 0, 0));
                worst.check(v[comp], w, scale, || format!("trace of component {comp}"));
            }
        }
    }
    assert!(
        worst.0 <= 1.0,
        "{label}: error {:.2}× the 1e-10 tolerance at {}",
        worst.0,
        worst.1
    );
}

fn pools() -> (rayon::ThreadPool, rayon::ThreadPool) {
    let pool = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("a thread pool")
    };
    (pool(1), pool(2))
}

fn bits(v: impl IntoIterator<Item = f64>) -> Vec<u64> {
    v.into_iter().map(f64::to_bits).collect()
}

fn stats_bits(e: &Evaluation) -> Vec<u64> {
    let s = e.stats.as_ref().expect("statistics were requested");
    let mut out = bits(s.weights().iter().copied());
    out.extend(bits(s.means().iter().copied()));
    match s.scatter() {
        Scatter::Full(m) => m.iter().for_each(|m| out.extend(bits(m.iter().copied()))),
        Scatter::Diag(m) | Scatter::Tied(m) => out.extend(bits(m.iter().copied())),
        Scatter::Spherical(v) => out.extend(bits(v.iter().copied())),
    }
    out
}

/// Evaluates on one and on two threads, checks the two are bit-identical and
/// returns one of them.
fn evaluate_both(model: &GaussianMixture, x: &DMatrix<f64>, label: &str) -> Evaluation {
    let (one, two) = pools();
    let a = one.install(|| model.evaluate(x.as_view(), EvalRequest::ALL).unwrap());
    let b = two.install(|| model.evaluate(x.as_view(), EvalRequest::ALL).unwrap());
    assert_eq!(
        a.log_likelihood.to_bits(),
        b.log_likelihood.to_bits(),
        "{label}: log-likelihood differs between 1 and 2 threads"
    );
    assert_eq!(
        bits(a.log_density.iter().copied()),
        bits(b.log_density.iter().copied())
    );
    assert_eq!(
        bits(a.responsibilities.iter().copied()),
        bits(b.responsibilities.iter().copied())
    );
    assert_eq!(stats_bits(&a), stats_bits(&b), "{label}: statistics differ");
    a
}

/// 2 full chunks, then a chunk of one full block and a partial one.
const N: usize = 2 * 1024 + 256 + 77;

#[test]
fn matches_reference_for_every_covariance_type_and_dimension() {
    for cov_type in CovarianceType::ALL {
        for d in [1usize, 2, 5, 6, 9, 16] {
            for offset in [0.0, 1e6] {
                let label = format!("{cov_type} d={d} offset={offset:e}");
                let mut rng = ChaCha8Rng::seed_from_u64(1000 + d as u64);
                let c = case(&mut rng, cov_type, 3, d, offset, 2.0);
                let (x, _) = c.model.sample(N, &mut rng);
                let eval = evaluate_both(&c.model, &x, &label);
                compare(&c, &x, &eval, &label);
            }
        }
    }
}

#[test]
fn model_far_from_its_data() {
    // The model sits at the origin, the data at 1e6 (as after a restart on shifted
    // data): sums about the model's means would cancel every digit.
    for cov_type in CovarianceType::ALL {
        for k in [1usize, 3] {
            let label = format!("{cov_type} K={k} far model");
            let mut rng = ChaCha8Rng::seed_from_u64(7 + k as u64);
            let d = 5;
            let at_data = case(&mut rng, cov_type, k, d, 1e6, 2.0);
            let (x, _) = at_data.model.sample(N, &mut rng);
            let mut rng = ChaCha8Rng::seed_from_u64(7 + k as u64);
            // The same components, but 1e6 away from the points.
            let c = case(&mut rng, cov_type, k, d, 0.0, 2.0);
            let eval = evaluate_both(&c.model, &x, &label);
            compare(&c, &x, &eval, &label);
        }
    }
}

#[test]
fn components_absent_from_whole_chunks() {
    // Components 50 apart with unit-scale covariances and points sorted by component:
    // most chunks give a component exactly zero weight, and at the boundaries a
    // component weighs only its far tail.
    for cov_type in CovarianceType::ALL {
        for d in [2usize, 9] {
            let label = format!("{cov_type} d={d} separated");
            let mut rng = ChaCha8Rng::seed_from_u64(99 + d as u64);
            let c = case(&mut rng, cov_type, 4, d, 0.0, 50.0);
            let (x, labels) = c.model.sample(N, &mut rng);
            let mut order: Vec<usize> = (0..N).collect();
            order.sort_by_key(|&j| labels[j]);
            let sorted = DMatrix::from_fn(d, N, |i, j| x[(i, order[j])]);
            let eval = evaluate_both(&c.model, &sorted, &label);
            compare(&c, &sorted, &eval, &label);
            let r = &eval.responsibilities;
            assert!(
                r.iter().filter(|&&v| v == 0.0).count() > N,
                "{label}: expected exactly-zero responsibilities"
            );
        }
    }
}

#[test]
fn single_points_and_tiny_batches() {
    // Fewer points than one lane group: everything is padding but these.
    for cov_type in CovarianceType::ALL {
        for n in [1usize, 3, 8, 9] {
            let label = format!("{cov_type} n={n}");
            let mut rng = ChaCha8Rng::seed_from_u64(5 + n as u64);
            let c = case(&mut rng, cov_type, 2, 3, 0.0, 1.0);
            let (x, _) = c.model.sample(n, &mut rng);
            let eval = evaluate_both(&c.model, &x, &label);
            compare(&c, &x, &eval, &label);
        }
    }
}
