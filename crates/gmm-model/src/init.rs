//! Starting points for EM, as scikit-learn's `init_params`: k-means (Lloyd from
//! k-means++ seeds), k-means++ seeds alone, random responsibilities, or random points.
//!
//! Each gives initial responsibilities; the first model is the M-step on them (so a
//! component seeded by a single point starts with covariance `reg_covar · I`, exactly
//! as in scikit-learn).

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::covariance::CovarianceType;
use super::error::{finite_above, invalid, ModelError, Result};
use super::linalg::Points;
use super::stats::SufficientStats;

/// How EM is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum InitMethod {
    /// Lloyd's k-means from k-means++ seeds; hard labels.
    #[default]
    #[serde(rename = "kmeans")]
    KMeans,
    /// k-means++ seeds only: each component starts at one point.
    #[serde(rename = "kmeans++")]
    KMeansPlusPlus,
    /// Uniform random responsibilities, normalised per point.
    #[serde(rename = "random")]
    Random,
    /// K distinct random points.
    #[serde(rename = "random-from-data")]
    RandomFromData,
}

impl InitMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KMeans => "kmeans",
            Self::KMeansPlusPlus => "kmeans++",
            Self::Random => "random",
            Self::RandomFromData => "random-from-data",
        }
    }
}

impl fmt::Display for InitMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InitMethod {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "kmeans" => Ok(Self::KMeans),
            "kmeans++" | "k-means++" => Ok(Self::KMeansPlusPlus),
            "random" => Ok(Self::Random),
            "random-from-data" | "random_from_data" => Ok(Self::RandomFromData),
            other => Err(invalid(
                "init",
                format!("`{other}` is not one of kmeans, kmeans++, random, random-from-data"),
            )),
        }
    }
}

/// Statistics of the initial responsibilities of `method` on `x`.
///
/// `trim` (0 for scikit-learn's behaviour) is the fraction of points farthest from
/// the k-means centres left out of the seeding, the centres and the initial
/// statistics: with outliers in the data, k-means++ would otherwise seed on them.
pub fn initial_stats<R: Rng + ?Sized>(
    x: Points<'_>,
    n_components: usize,
    cov_type: CovarianceType,
    method: InitMethod,
    rng: &mut R,
    trim: f64,
) -> Result<SufficientStats> {
    let n = x.ncols();
    if n < n_components {
        return Err(ModelError::TooFewPoints {
            n_points: n,
            n_components,
        });
    }
    match method {
        InitMethod::KMeans => {
            let options = KMeansOptions {
                trim,
                ..KMeansOptions::default()
            };
            let result = kmeans(x, n_components, rng, options);
            let mut labels: Vec<Option<usize>> = result.labels.into_iter().map(Some).collect();
            for (l, &t) in labels.iter_mut().zip(&result.trimmed) {
                if t {
                    *l = None;
                }
            }
            Ok(stats_from_labels(x, &labels, n_components, cov_type))
        }
        InitMethod::KMeansPlusPlus => {
            let seeds = kmeans_plusplus_trimmed(x, n_components, rng, trim);
            Ok(stats_from_seeds(x, &seeds, cov_type))
        }
        InitMethod::RandomFromData => {
            let seeds = rand::seq::index::sample(rng, n, n_components).into_vec();
            Ok(stats_from_seeds(x, &seeds, cov_type))
        }
        InitMethod::Random => {
            let mut resp = DMatrix::from_fn(n_components, n, |_, _| rng.random::<f64>());
            for mut col in resp.column_iter_mut() {
                let s = col.sum();
                col /= s;
            }
            SufficientStats::from_responsibilities(cov_type, x, &resp)
        }
    }
}

/// Statistics of hard labels: each point has responsibility 1 for its cluster
/// (points labelled None are left out).
pub fn stats_from_labels(
    x: Points<'_>,
    labels: &[Option<usize>],
    n_components: usize,
    cov_type: CovarianceType,
) -> SufficientStats {
    let d = x.nrows();
    let mut stats = SufficientStats::new(cov_type, n_components, d);
    let mut scratch = Vec::new();
    for k in 0..n_components {
        let members: Vec<usize> = (0..labels.len())
            .filter(|&j| labels[j] == Some(k))
            .collect();
        for block in members.chunks(super::block_stats::BLOCK) {
            let pts = DMatrix::from_fn(d, block.len(), |i, j| x[(i, block[j])]);
            // One-hot responsibilities: only row k is non-zero.
            let mut resp = vec![0.0; n_components * block.len()];
            for j in 0..block.len() {
                resp[k + j * n_components] = 1.0;
            }
            stats.absorb_block(pts.as_view(), &resp, &mut scratch);
        }
    }
    stats
}

/// Statistics where component k holds point `seeds[k]` alone.
fn stats_from_seeds(x: Points<'_>, seeds: &[usize], cov_type: CovarianceType) -> SufficientStats {
    stats_from_labels(
        DMatrix::from_fn(x.nrows(), seeds.len(), |i, j| x[(i, seeds[j])]).as_view(),
        &(0..seeds.len()).map(Some).collect::<Vec<_>>(),
        seeds.len(),
        cov_type,
    )
}

/// Squared distance between two columns.
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The points centred on their mean, row-major: distances far from the origin keep
/// their digits.
fn centred_rows(x: Points<'_>) -> (Vec<f64>, DVector<f64>) {
    let mean = x.column_mean();
    let mut flat = Vec::with_capacity(x.len());
    for col in x.column_iter() {
        flat.extend(col.iter().zip(mean.iter()).map(|(v, m)| v - m));
    }
    (flat, mean)
}

/// Greedy k-means++ (Arthur and Vassilvitskii 2007, with scikit-learn's
/// `2 + ln K` local trials per centre): indices of K seed points.
pub fn kmeans_plusplus<R: Rng + ?Sized>(x: Points<'_>, k: usize, rng: &mut R) -> Vec<usize> {
    kmeans_plusplus_trimmed(x, k, rng, 0.0)
}

/// k-means++ where the `trim` fraction of points farthest from the seeds so far
/// cannot become seeds: D² sampling otherwise favours outliers.
pub fn kmeans_plusplus_trimmed<R: Rng + ?Sized>(
    x: Points<'_>,
    k: usize,
    rng: &mut R,
    trim: f64,
) -> Vec<usize> {
    let (d, n) = x.shape();
    let (flat, _) = centred_rows(x);
    let point = |j: usize| &flat[j * d..(j + 1) * d];
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut seeds = vec![rng.random_range(0..n)];
    let mut closest: Vec<f64> = (0..n).map(|j| sq_dist(point(j), point(seeds[0]))).collect();
    let mut cap = trim_cap(closest.iter().copied(), trim);
    let mut potential: f64 = closest.iter().filter(|&&v| v <= cap).sum();
    while seeds.len() < k {
        let cumulative: Vec<f64> = closest
            .iter()
            .scan(0.0, |acc, &v| {
                *acc += if v <= cap { v } else { 0.0 };
                Some(*acc)
            })
            .collect();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let target = rng.random::<f64>() * potential;
            let cand = cumulative.partition_point(|&c| c < target).min(n - 1);
            let dists: Vec<f64> = (0..n)
                .into_par_iter()
                .map(|j| closest[j].min(sq_dist(point(j), point(cand))))
                .collect();
            let cand_cap = trim_cap(dists.iter().copied(), trim);
            let pot: f64 = dists.iter().filter(|&&v| v <= cand_cap).sum();
            if best.as_ref().is_none_or(|(p, _, _)| pot < *p) {
                best = Some((pot, cand, dists));
            }
        }
        // `trials >= 2`, so best is set.
        let Some((pot, cand, dists)) = best else {
            break;
        };
        seeds.push(cand);
        closest = dists;
        cap = trim_cap(closest.iter().copied(), trim);
        potential = pot;
    }
    seeds
}

/// The distance at or below which all but the `trim` fraction farthest lie (∞ when
/// nothing is trimmed).
fn trim_cap(dists: impl IntoIterator<Item = f64>, trim: f64) -> f64 {
    if !finite_above(trim, 0.0) {
        return f64::INFINITY;
    }
    let mut v: Vec<f64> = dists.into_iter().collect();
    if v.is_empty() {
        return f64::INFINITY;
    }
    let keep = (((1.0 - trim) * v.len() as f64).ceil() as usize).clamp(1, v.len());
    *v.select_nth_unstable_by(keep - 1, f64::total_cmp).1
}

#[derive(Clone, Copy, Debug)]
pub struct KMeansOptions {
    pub max_iter: usize,
    /// Relative to the mean variance of the data, as scikit-learn's `tol`.
    pub tol: f64,
    /// Fraction of points, the farthest from their centres, left out of the seeding
    /// and of the centres (trimmed k-means, robust to outliers); 0 keeps them all.
    pub trim: f64,
}

impl Default for KMeansOptions {
    fn default() -> Self {
        Self {
            max_iter: 300,
            tol: 1e-4,
            trim: 0.0,
        }
    }
}

pub struct KMeansResult {
    /// d×K.
    pub centres: DMatrix<f64>,
    pub labels: Vec<usize>,
    pub inertia: f64,
    pub n_iter: usize,
    /// Points left out by `trim` (all false without trimming).
    pub trimmed: Vec<bool>,
}

/// Lloyd's algorithm from k-means++ seeds. An empty cluster is moved to the point
/// farthest from its centre.
pub fn kmeans<R: Rng + ?Sized>(
    x: Points<'_>,
    k: usize,
    rng: &mut R,
    options: KMeansOptions,
) -> KMeansResult {
    let (d, n) = x.shape();
    let seeds = kmeans_plusplus_trimmed(x, k, rng, options.trim);
    let (flat, mean) = centred_rows(x);
    let point = |j: usize| &flat[j * d..(j + 1) * d];
    let variance_scale = {
        let mut v = vec![0.0; d];
        for j in 0..n {
            for (vi, xi) in v.iter_mut().zip(point(j)) {
                *vi += xi * xi;
            }
        }
        v.iter().sum::<f64>() / (d * n) as f64
    };
    let tol = options.tol * variance_scale;
    let mut centres: Vec<f64> = seeds.iter().flat_map(|&s| point(s).to_vec()).collect();
    let mut labels = vec![0usize; n];
    let mut n_iter = 0;
    for iter in 1..=options.max_iter.max(1) {
        n_iter = iter;
        let assigned: Vec<(usize, f64)> = (0..n)
            .into_par_iter()
            .map(|j| nearest(point(j), &centres, d))
            .collect();
        let changed = assigned.iter().zip(&labels).any(|(a, l)| a.0 != *l) || iter == 1;
        for (l, a) in labels.iter_mut().zip(&assigned) {
            *l = a.0;
        }
        let cap = trim_cap(assigned.iter().map(|a| a.1), options.trim);
        let new_centres = recompute_centres(&flat, &labels, &assigned, cap, k, d);
        let shift: f64 = new_centres
            .chunks_exact(d)
            .zip(centres.chunks_exact(d))
            .map(|(a, b)| sq_dist(a, b))
            .sum();
        centres = new_centres;
        if !changed || shift <= tol {
            break;
        }
    }
    // Final assignment against the final centres, as scikit-learn's labels_.
    let assigned: Vec<(usize, f64)> = (0..n)
        .into_par_iter()
        .map(|j| nearest(point(j), &centres, d))
        .collect();
    for (l, a) in labels.iter_mut().zip(&assigned) {
        *l = a.0;
    }
    fill_empty_clusters(&mut labels, &assigned, k);
    let cap = trim_cap(assigned.iter().map(|a| a.1), options.trim);
    let trimmed = assigned.iter().map(|a| a.1 > cap).collect();
    let mut out = DMatrix::from_column_slice(d, k, &centres);
    for mut col in out.column_iter_mut() {
        col += &mean;
    }
    KMeansResult {
        centres: out,
        labels,
        inertia: assigned.iter().map(|a| a.1).sum(),
        n_iter,
        trimmed,
    }
}

/// Gives every empty cluster one point: the one farthest from its centre among
/// clusters that keep at least one. Data with fewer distinct values than K leaves
/// coincident centres, and ties send all their points to the first.
fn fill_empty_clusters(labels: &mut [usize], assigned: &[(usize, f64)], k: usize) {
    let mut counts = vec![0usize; k];
    for &l in labels.iter() {
        counts[l] += 1;
    }
    let mut far: Vec<usize> = (0..labels.len()).collect();
    far.sort_by(|&a, &b| assigned[b].1.total_cmp(&assigned[a].1));
    let mut donors = far.into_iter();
    for c in 0..k {
        if counts[c] > 0 {
            continue;
        }
        if let Some(j) = donors.by_ref().find(|&j| counts[labels[j]] > 1) {
            counts[labels[j]] -= 1;
            labels[j] = c;
            counts[c] = 1;
        }
    }
}

fn nearest(p: &[f64], centres: &[f64], d: usize) -> (usize, f64) {
    centres
        .chunks_exact(d)
        .enumerate()
        .map(|(c, centre)| (c, sq_dist(p, centre)))
        .fold(
            (0, f64::INFINITY),
            |best, cur| if cur.1 < best.1 { cur } else { best },
        )
}

/// Centres from the points within `cap` of their centre (all, when not trimming).
fn recompute_centres(
    flat: &[f64],
    labels: &[usize],
    assigned: &[(usize, f64)],
    cap: f64,
    k: usize,
    d: usize,
) -> Vec<f64> {
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0usize; k];
    for (j, &l) in labels.iter().enumerate() {
        if assigned[j].1 > cap {
            continue;
        }
        counts[l] += 1;
        for i in 0..d {
            sums[l * d + i] += flat[j * d + i];
        }
    }
    // Empty clusters take the points farthest from their centres (sorted only
    // when there is one: this runs at every Lloyd iteration).
    if counts.contains(&0) {
        let mut far: Vec<usize> = (0..labels.len()).collect();
        far.sort_by(|&a, &b| assigned[b].1.total_cmp(&assigned[a].1));
        let mut far = far.into_iter();
        for c in 0..k {
            if counts[c] == 0 {
                if let Some(j) = far.next() {
                    sums[c * d..(c + 1) * d].copy_from_slice(&flat[j * d..(j + 1) * d]);
                    counts[c] = 1;
                }
            }
        }
    }
    for c in 0..k {
        let cnt = counts[c].max(1) as f64;
        sums[c * d..(c + 1) * d].iter_mut().for_each(|v| *v /= cnt);
    }
    sums
}
