//! A stream whose number of clusters changes, for the online variational tests:
//! eight well-separated cluster sites in the plane, and phases that each draw from a
//! subset of them with equal weights. A site present in consecutive phases is the
//! same cluster, so the component that models it should keep its index.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use gmm_model::{fit, points_from_rows, Covariances, EmSettings, GaussianMixture};
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub const DIM: usize = 2;

/// Centre and covariance of site i: on a circle of radius 12, shapes varying.
fn site(i: usize) -> (DVector<f64>, DMatrix<f64>) {
    let angle = i as f64 * std::f64::consts::TAU / 8.0;
    let centre = DVector::from_vec(vec![12.0 * angle.cos(), 12.0 * angle.sin()]);
    let (a, b) = (
        0.6 + 0.1 * (i % 3) as f64,
        0.25 * ((i % 4) as f64 - 1.5) / 1.5,
    );
    let cov = DMatrix::from_row_slice(2, 2, &[a, b * 0.5, b * 0.5, 0.8 - 0.05 * i as f64]);
    (centre, cov)
}

/// The mixture of the given sites, equally weighted.
pub fn phase_truth(sites: &[usize]) -> GaussianMixture {
    let k = sites.len();
    let weights = DVector::from_element(k, 1.0 / k as f64);
    let means = DMatrix::from_fn(DIM, k, |r, c| site(sites[c]).0[r]);
    let covs = sites.iter().map(|&s| site(s).1).collect();
    GaussianMixture::new(weights, means, Covariances::Full(covs)).expect("valid truth")
}

/// The centre of site i.
pub fn site_centre(i: usize) -> DVector<f64> {
    site(i).0
}

/// `n` points of `model` (row-major), shuffled by the sampler.
pub fn draw(model: &GaussianMixture, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (x, _) = model.sample(n, &mut rng);
    x.as_slice().to_vec()
}

/// Batch EM with the true K on `flat`: the yardstick.
pub fn batch_fit(flat: &[f64], k: usize) -> GaussianMixture {
    let x = points_from_rows(flat, DIM).expect("whole points");
    let settings = EmSettings {
        tol: 1e-6,
        max_iter: 500,
        n_init: 3,
        ..EmSettings::new(k)
    };
    fit(x, &settings, &mut |_| {}).expect("batch fit").model
}

pub fn mean_ll(model: &GaussianMixture, flat: &[f64]) -> f64 {
    model
        .score(points_from_rows(flat, DIM).expect("whole points"))
        .expect("scores")
}

/// Components above `share` of the weight.
pub fn used(model: &GaussianMixture, share: f64) -> Vec<usize> {
    (0..model.n_components())
        .filter(|&k| model.weights()[k] > share)
        .collect()
}

/// The component above `share` of the weight whose mean is nearest site i.
pub fn component_of_site(model: &GaussianMixture, i: usize, share: f64) -> Option<usize> {
    let c = site_centre(i);
    used(model, share).into_iter().min_by(|&a, &b| {
        let da = (model.means().column(a) - &c).norm();
        let db = (model.means().column(b) - &c).norm();
        da.total_cmp(&db)
    })
}

/// The phases: sites drawn in each (2 → 5 → 3 clusters; 0 and 1 stay from the first
/// to the second, 2 and 4 from the second to the third).
pub const PHASES: [&[usize]; 3] = [&[0, 1], &[0, 1, 2, 4, 6], &[2, 4, 7]];

/// Checks `model` at the end of phase `p` (seed offset `seed` for the draws): the
/// phase's number of components above 2 %, within 0.05 nats/point of batch EM with
/// the true K on held-out points, and every site of the previous phase still
/// modelled keeping its component. Returns the (site, component) pairs.
pub fn check_phase(
    p: usize,
    model: &GaussianMixture,
    seed: u64,
    previous: Option<&[(usize, usize)]>,
) -> Vec<(usize, usize)> {
    let sites = PHASES[p];
    let truth = phase_truth(sites);
    let live = used(model, 0.02);
    assert_eq!(
        live.len(),
        sites.len(),
        "phase {p}: components above 2 %: {live:?}, weights {:?}",
        model.weights()
    );
    let held = draw(&truth, 20_000, seed);
    let yardstick = batch_fit(&draw(&truth, 20_000, seed + 1), sites.len());
    let gap = mean_ll(&yardstick, &held) - mean_ll(model, &held);
    let owners: Vec<(usize, usize)> = sites
        .iter()
        .map(|&s| {
            (
                s,
                component_of_site(model, s, 0.02).expect("a live component"),
            )
        })
        .collect();
    println!(
        "phase {p}: {} components above 2 %, gap {gap:.4} nats/point, owners {owners:?}",
        live.len()
    );
    assert!(
        gap < 0.05,
        "phase {p}: {gap} nats/point below batch EM with K = {}",
        sites.len()
    );
    for (site, k) in &owners {
        if let Some((_, before)) = previous.into_iter().flatten().find(|(s, _)| s == site) {
            assert_eq!(
                k, before,
                "phase {p}: site {site} moved from component {before} to {k}"
            );
        }
    }
    owners
}
