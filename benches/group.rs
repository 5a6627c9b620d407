//! What sharing the model across a consumer group costs per batch: a member's
//! update (E-step per partition, then the M-step on the sum of every partition's
//! statistics) against one estimator's, as the number of partitions the group knows
//! grows; and the state records' encoding and decoding.
//!
//! One thread; batches of 4096 points as the daemon's default.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gmm_io::state::{RecordMeta, Shape, StateRecord, StateValue};
use gmm_model::group::{GroupEstimator, Incoming, PartitionKey, PartitionState, Run};
use gmm_model::{CovarianceType, DriftSettings, OnlineEm, OnlineSettings};

#[path = "support/estep_problem.rs"]
mod estep_problem;
use estep_problem::problem;

const BATCH: usize = 4096;
const CASES: [(usize, usize); 2] = [(3, 6), (16, 16)];

fn settings(k: usize) -> OnlineSettings {
    OnlineSettings {
        warmup_points: BATCH,
        // Re-seeding and refits would make batches unequal.
        min_weight: 0.0,
        drift: DriftSettings {
            enabled: false,
            ..DriftSettings::default()
        },
        ..OnlineSettings::new(k)
    }
}

/// A member owning partition 0 of `known`, past its warm-up, with the others'
/// states (copies of its own) known.
fn member(d: usize, k: usize, known: i32, x: &nalgebra::DMatrix<f64>) -> GroupEstimator {
    let mut g = GroupEstimator::new(settings(k), "bench").expect("member");
    let own = PartitionKey::new("points", 0);
    g.assign(own.clone(), None).expect("assign");
    let warm = x.columns(0, BATCH);
    g.absorb(
        &[Run {
            key: &own,
            points: warm,
        }],
        &[],
        0.0,
    )
    .expect("warm-up");
    for p in g.take_proposals() {
        g.receive(Incoming::Structure(Box::new(p)), 0.0)
            .expect("adopt");
    }
    let state = g.state_of(&own).expect("own").clone();
    for p in 1..known {
        let other = PartitionState {
            key: PartitionKey::new("points", p),
            ..state.clone()
        };
        g.receive(
            Incoming::Partition {
                state: other,
                publisher: "other".into(),
            },
            0.0,
        )
        .expect("state");
    }
    assert_eq!(
        g.model().map(|m| (m.n_features(), m.n_components())),
        Some((d, k))
    );
    g
}

fn updates(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    let mut group = c.benchmark_group("batch_update");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (d, k) in CASES {
        let (_, x) = problem(d, k, CovarianceType::Full);
        let batch = x.columns(BATCH, BATCH);
        let shape = format!("full_d{d}_k{k}");
        let mut single = OnlineEm::new(settings(k)).expect("estimator");
        single
            .partial_fit(x.columns(0, BATCH), 0.0)
            .expect("warm-up");
        group.bench_function(BenchmarkId::new("one_estimator", &shape), |b| {
            pool.install(|| b.iter(|| single.partial_fit(black_box(batch), 1.0).expect("fit")))
        });
        for known in [1, 8, 64] {
            let mut g = member(d, k, known, &x);
            let own = PartitionKey::new("points", 0);
            let name = format!("member_of_{known}_partitions");
            group.bench_function(BenchmarkId::new(name, &shape), |b| {
                pool.install(|| {
                    b.iter(|| {
                        let runs = [Run {
                            key: &own,
                            points: black_box(batch),
                        }];
                        g.absorb(&runs, &[], 1.0).expect("absorb")
                    })
                })
            });
        }
    }
    group.finish();
}

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_record");
    for (d, k) in CASES {
        let (_, x) = problem(d, k, CovarianceType::Full);
        let g = member(d, k, 1, &x);
        let state = g
            .state_of(&PartitionKey::new("points", 0))
            .expect("own")
            .clone();
        let record = StateRecord {
            meta: RecordMeta {
                group: "group".into(),
                publisher: "bench".into(),
                published_ms: 0,
                shape: Shape::of(g.settings(), d),
            },
            value: StateValue::Partition(state),
        };
        let bytes = record.encode();
        let shape = format!("full_d{d}_k{k}_{}_bytes", bytes.len());
        group.bench_function(BenchmarkId::new("encode", &shape), |b| {
            b.iter(|| black_box(&record).encode())
        });
        group.bench_function(BenchmarkId::new("decode", &shape), |b| {
            b.iter(|| StateRecord::decode(black_box(&bytes)).expect("decodes"))
        });
    }
    group.finish();
}

criterion_group!(benches, updates, records);
criterion_main!(benches);
