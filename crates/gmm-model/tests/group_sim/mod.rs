//! A consumer group simulated in memory: members exchanging their records through one
//! ordered log (the state topic), fed with points of known clusters per partition.
#![allow(dead_code)]

use gmm_model::group::{
    GroupEstimator, Incoming, PartitionKey, PartitionState, Reaction, Run, SampleUpdate, Structure,
};
use gmm_model::{points_from_rows, Covariances, GaussianMixture, OnlineSettings};
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The state topic: every record in publish order.
#[derive(Default)]
pub struct Log {
    pub entries: Vec<Incoming>,
}

impl Log {
    pub fn structures(&self) -> Vec<&Structure> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Incoming::Structure(s) => Some(&**s),
                _ => None,
            })
            .collect()
    }
}

pub struct Member {
    pub est: GroupEstimator,
    /// Entries of the log read so far.
    pub read: usize,
    pub reactions: Vec<Reaction>,
    /// Buffered runs' scores received at the initial model: seq → points.
    pub warmup_scored: usize,
    pub scored: usize,
}

impl Member {
    pub fn new(name: &str, settings: OnlineSettings) -> Self {
        Self {
            est: GroupEstimator::new(settings, name).expect("a member"),
            read: 0,
            reactions: Vec::new(),
            warmup_scored: 0,
            scored: 0,
        }
    }

    pub fn name(&self) -> String {
        self.est.member().to_string()
    }

    /// Absorbs `points` (row-major, per partition in order) and publishes what the
    /// batch changed.
    pub fn absorb(
        &mut self,
        batch: &[(PartitionKey, Vec<f64>)],
        d: usize,
        now: f64,
        log: &mut Log,
    ) {
        let runs: Vec<Run<'_>> = batch
            .iter()
            .map(|(key, values)| Run {
                key,
                points: points_from_rows(values, d).expect("points"),
            })
            .collect();
        let outcome = self.est.absorb(&runs, &[], now).expect("absorbed");
        if let Some(s) = &outcome.scored {
            self.scored += s.evaluation.n_points;
        }
        if let Some(e) = outcome.proposal_error {
            panic!("{} could not propose: {e}", self.name());
        }
        self.publish(log);
    }

    /// Everything in the outbox goes to the log.
    pub fn publish(&mut self, log: &mut Log) {
        for p in self.est.take_proposals() {
            log.entries.push(Incoming::Structure(Box::new(p)));
        }
        while let Some(update) = self.est.take_sample() {
            log.entries.push(match update {
                SampleUpdate::Publish(s) => Incoming::Sample(s),
                SampleUpdate::Delete => Incoming::SampleDeleted {
                    member: self.name(),
                },
            });
        }
        for state in self.est.take_dirty() {
            log.entries.push(Incoming::Partition {
                state,
                publisher: self.name(),
            });
        }
    }

    /// Reads the log to its end (publishing what that makes this member publish).
    pub fn catch_up(&mut self, log: &mut Log, now: f64) {
        while self.read < log.entries.len() {
            let entry = log.entries[self.read].clone();
            self.read += 1;
            let reaction = self.est.receive(entry, now).expect("a valid record");
            match &reaction {
                Reaction::Lost { winner } => {
                    log.entries.push(Incoming::Structure(winner.clone()));
                }
                Reaction::Adopted(a) => {
                    self.warmup_scored += a
                        .scored
                        .iter()
                        .map(|(_, s)| s.evaluation.n_points)
                        .sum::<usize>();
                }
                _ => {}
            }
            self.reactions.push(reaction);
            self.publish(log);
        }
        self.est.refresh().expect("refresh");
    }

    pub fn model(&self) -> &GaussianMixture {
        self.est.model().expect("a model")
    }

    pub fn state(&self, key: &PartitionKey) -> PartitionState {
        self.est.state_of(key).expect("a state").clone()
    }
}

/// Six well-separated 2-d clusters on a circle of radius 12, one per partition.
pub fn clusters(shift: f64) -> Vec<(DVector<f64>, DMatrix<f64>)> {
    (0..6)
        .map(|i| {
            let a = i as f64 * std::f64::consts::PI / 3.0 + shift;
            let mean = DVector::from_vec(vec![12.0 * a.cos(), 12.0 * a.sin()]);
            let s = 0.6 + 0.15 * i as f64;
            let c = 0.3 * s * if i % 2 == 0 { 1.0 } else { -1.0 };
            (mean, DMatrix::from_row_slice(2, 2, &[s, c, c, s]))
        })
        .collect()
}

/// One cluster as a mixture of one component.
pub fn cluster_model(c: &(DVector<f64>, DMatrix<f64>)) -> GaussianMixture {
    GaussianMixture::new(
        DVector::from_element(1, 1.0),
        DMatrix::from_column_slice(2, 1, c.0.as_slice()),
        Covariances::Full(vec![c.1.clone()]),
    )
    .expect("a cluster")
}

/// The equal-weight mixture of the clusters.
pub fn mixture_of(cs: &[(DVector<f64>, DMatrix<f64>)]) -> GaussianMixture {
    let k = cs.len();
    GaussianMixture::new(
        DVector::from_element(k, 1.0 / k as f64),
        DMatrix::from_fn(2, k, |i, j| cs[j].0[i]),
        Covariances::Full(cs.iter().map(|c| c.1.clone()).collect()),
    )
    .expect("a mixture")
}

/// Draws points of one partition.
pub struct Source {
    pub cluster: GaussianMixture,
    pub rng: ChaCha8Rng,
}

impl Source {
    pub fn new(c: &(DVector<f64>, DMatrix<f64>), seed: u64) -> Self {
        Self {
            cluster: cluster_model(c),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn draw(&mut self, n: usize) -> Vec<f64> {
        let (x, _) = self.cluster.sample(n, &mut self.rng);
        x.as_slice().to_vec()
    }
}

pub fn key(p: i32) -> PartitionKey {
    PartitionKey::new("points", p)
}

pub fn mean_ll(model: &GaussianMixture, points: &[f64]) -> f64 {
    model
        .score(points_from_rows(points, 2).expect("points"))
        .expect("scores")
}

/// The largest relative difference between two models' parameters.
pub fn relative_difference(a: &GaussianMixture, b: &GaussianMixture) -> f64 {
    let rel = |x: f64, y: f64| (x - y).abs() / x.abs().max(y.abs()).max(1e-300);
    let mut worst: f64 = 0.0;
    for (x, y) in a.weights().iter().zip(b.weights().iter()) {
        worst = worst.max(rel(*x, *y));
    }
    for (x, y) in a.means().iter().zip(b.means().iter()) {
        worst = worst.max(rel(*x, *y));
    }
    let d = a.n_features();
    for k in 0..a.n_components() {
        let (ca, cb) = (
            a.covariances().component_matrix(k, d),
            b.covariances().component_matrix(k, d),
        );
        for (x, y) in ca.iter().zip(cb.iter()) {
            worst = worst.max(rel(*x, *y));
        }
    }
    worst
}
