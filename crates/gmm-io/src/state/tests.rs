use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

use super::*;
use gmm_model::group::{
    Ancestor, Carried, GroupVariational, SlotMap, StructureChange, StructureId, Used,
};
use gmm_model::{
    CovariancePrior, Covariances, GaussianMixture, Prior, Scatter, SufficientStats,
    VariationalPrior, WeightPriorType,
};

const K: usize = 3;
const D: usize = 2;

fn shape(t: CovarianceType) -> Shape {
    Shape {
        covariance_type: t,
        n_components: K,
        n_features: D,
        inference: Inference::Em,
        unit: HalfLifeUnit::Points,
        half_life: Some(10_000.0),
    }
}

fn meta(t: CovarianceType) -> RecordMeta {
    RecordMeta {
        group: "g".into(),
        publisher: "member-a".into(),
        published_ms: 1_700_000_000_123,
        shape: shape(t),
    }
}

fn stats(t: CovarianceType) -> SufficientStats {
    let weights = DVector::from_vec(vec![10.5, 0.0, 3.25]);
    let means = DMatrix::from_fn(D, K, |i, k| (i as f64 + 1.0) * (k as f64 - 0.5) * 1e5 + 0.1);
    let spd = |k: usize| DMatrix::from_row_slice(D, D, &[2.0 + k as f64, 0.5, 0.5, 1.0]);
    let scatter = match t {
        CovarianceType::Full => Scatter::Full((0..K).map(spd).collect()),
        CovarianceType::Diag => Scatter::Diag(DMatrix::from_fn(D, K, |i, k| 1.0 + (i + k) as f64)),
        CovarianceType::Spherical => Scatter::Spherical(DVector::from_vec(vec![1.0, 0.0, 2.5])),
        CovarianceType::Tied => Scatter::Tied(spd(1)),
    };
    SufficientStats::from_parts(weights, means, scatter).expect("stats")
}

fn mixture(t: CovarianceType) -> GaussianMixture {
    let spd = |k: usize| DMatrix::from_row_slice(D, D, &[2.0 + k as f64, 0.5, 0.5, 1.0]);
    let covariances = match t {
        CovarianceType::Full => Covariances::Full((0..K).map(spd).collect()),
        CovarianceType::Diag => {
            Covariances::Diag(DMatrix::from_fn(D, K, |i, k| 1.0 + (i + k) as f64))
        }
        CovarianceType::Spherical => Covariances::Spherical(DVector::from_vec(vec![1.0, 3.0, 2.5])),
        CovarianceType::Tied => Covariances::Tied(spd(0)),
    };
    GaussianMixture::new(
        DVector::from_vec(vec![0.5, 0.25, 0.25]),
        DMatrix::from_fn(D, K, |i, k| (i * 3 + k) as f64),
        covariances,
    )
    .expect("mixture")
}

fn partition(t: CovarianceType) -> StateRecord {
    StateRecord {
        meta: meta(t),
        value: StateValue::Partition(PartitionState {
            key: PartitionKey::new("points.in", 7),
            epoch: 4,
            next_offset: 123_456,
            points: 99_999,
            batches: 12.25,
            clock: 314_159.0,
            stats: stats(t),
        }),
    }
}

fn structure(t: CovarianceType) -> StateRecord {
    let id = |p: &str, seq| StructureId {
        proposer: p.into(),
        seq,
    };
    let covariance = match t {
        CovarianceType::Full | CovarianceType::Tied => {
            CovariancePrior::Matrix(DMatrix::from_row_slice(D, D, &[1.0, 0.2, 0.2, 1.0]))
        }
        CovarianceType::Diag => CovariancePrior::Diagonal(DVector::from_vec(vec![1.0, 2.0])),
        CovarianceType::Spherical => CovariancePrior::Scalar(1.5),
    };
    StateRecord {
        meta: meta(t),
        value: StateValue::Structure(Box::new(Structure {
            epoch: 5,
            id: id("member-b", 17),
            parent: Some(id("member-a", 3)),
            change: StructureChange::Variational {
                born: vec![2],
                retired: vec![],
                merged: vec![(0, 1)],
            },
            ancestors: vec![
                Ancestor {
                    epoch: 4,
                    id: id("member-a", 3),
                    map: SlotMap(vec![Some(0), Some(0), None]),
                },
                Ancestor {
                    epoch: 3,
                    id: id("member-c", 1),
                    map: SlotMap(vec![None, Some(0), Some(2)]),
                },
            ],
            carried: Carried {
                clock: 1234.5,
                stats: stats(t),
            },
            model: mixture(t),
            prior: Some(Prior {
                weight_concentration: 1.0,
                mean: DVector::from_vec(vec![0.5, -0.5]),
                mean_precision: 0.01,
                dof: 4.0,
                scale: DMatrix::from_row_slice(D, D, &[1.0, 0.1, 0.1, 2.0]),
            }),
            variational: Some(GroupVariational {
                prior: VariationalPrior {
                    weight_concentration_prior_type: WeightPriorType::DirichletProcess,
                    weight_concentration: 0.5,
                    mean_precision: 0.01,
                    mean: DVector::from_vec(vec![0.0, 1.0]),
                    degrees_of_freedom: 2.0,
                    covariance,
                },
                alive: vec![true, false, true],
            }),
            collecting: Some(4),
            used: Some(Used {
                purpose: 4,
                samples: vec![("member-a".into(), 600), ("member-b".into(), 300)],
            }),
            trim_below: Some(-12.5),
        })),
    }
}

fn sample() -> StateRecord {
    StateRecord {
        meta: meta(CovarianceType::Full),
        value: StateValue::Sample(Sample {
            member: "member-a".into(),
            purpose: 0,
            n_features: D,
            points: vec![1.0, 2.0, -3.0, 4.5e300],
        }),
    }
}

fn all_records() -> Vec<StateRecord> {
    let mut out = Vec::new();
    for t in [
        CovarianceType::Full,
        CovarianceType::Diag,
        CovarianceType::Spherical,
        CovarianceType::Tied,
    ] {
        out.push(partition(t));
        out.push(structure(t));
    }
    out.push(sample());
    out.push(StateRecord {
        meta: RecordMeta {
            shape: Shape {
                n_features: 0,
                ..shape(CovarianceType::Full)
            },
            ..meta(CovarianceType::Full)
        },
        value: StateValue::Fence { nonce: 42 },
    });
    out
}

#[test]
fn every_record_reads_back_bit_for_bit() {
    for record in all_records() {
        let bytes = record.encode();
        assert!(bytes.starts_with(STATE_MAGIC));
        let back = StateRecord::decode(&bytes).unwrap_or_else(|e| panic!("{e}: {record:?}"));
        assert_eq!(back, record);
        assert_eq!(back.encode(), bytes);
    }
}

#[test]
fn keys_name_what_compaction_keeps() {
    assert_eq!(
        partition(CovarianceType::Full).key(),
        "partition/points.in/7"
    );
    assert_eq!(structure(CovarianceType::Full).key(), "structure");
    assert_eq!(sample().key(), "sample/member-a");
}

#[test]
fn a_partition_record_is_about_k_times_d_squared_doubles() {
    // K (d² + d + 1) doubles of statistics, plus about 110 bytes of framing,
    // counts and clock, and the names (group, member, topic).
    let bytes = partition(CovarianceType::Full).encode();
    let numbers = K * (D * D + D + 1) * 8;
    let names = "g".len() + "member-a".len() + "points.in".len();
    assert_eq!(bytes.len(), numbers + 116 + names);
}

#[test]
fn damaged_records_are_refused_not_misread() {
    let bytes = partition(CovarianceType::Full).encode();
    for cut in [0, 10, 28, bytes.len() - 1] {
        assert!(StateRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut flipped = bytes.clone();
    flipped[40] ^= 1;
    assert!(matches!(
        StateRecord::decode(&flipped),
        Err(StateRecordError::Checksum)
    ));
    let mut version = bytes.clone();
    version[16] = 9;
    assert!(matches!(
        StateRecord::decode(&version),
        Err(StateRecordError::UnsupportedVersion(9))
    ));
    assert!(matches!(
        StateRecord::decode(b"{\"format\": 1}"),
        Err(StateRecordError::NotAStateRecord)
    ));
}

/// Re-frames a payload with a valid header and checksum, so that only the payload's
/// own checks stand between it and the decoder.
fn framed(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = STATE_MAGIC.to_vec();
    out.extend_from_slice(&STATE_VERSION.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn a_shape_larger_than_the_record_is_refused_before_allocating() {
    let bytes = partition(CovarianceType::Full).encode();
    let payload = &bytes[29..bytes.len() - 4];
    // The shape follows group, publisher and time: find K (u32 3) and make it huge.
    let k_at = 4 + 1 + 4 + 8 + 8 + 1;
    let mut p = payload.to_vec();
    assert_eq!(&p[k_at..k_at + 4], &3u32.to_le_bytes());
    p[k_at..k_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = StateRecord::decode(&framed(1, &p)).expect_err("refused");
    assert!(err.to_string().contains("do not fit"), "{err}");
}

#[test]
fn invalid_values_are_refused() {
    // A negative weight, re-framed with a valid checksum.
    let record = partition(CovarianceType::Diag);
    let bytes = record.encode();
    let mut p = bytes[29..bytes.len() - 4].to_vec();
    let weight = 10.5f64.to_le_bytes();
    let at = p
        .windows(8)
        .position(|w| w == weight)
        .expect("the first weight");
    p[at..at + 8].copy_from_slice(&(-1.0f64).to_le_bytes());
    let err = StateRecord::decode(&framed(1, &p)).expect_err("refused");
    assert!(matches!(err, StateRecordError::Invalid(_)), "{err}");
}

#[test]
fn shapes_that_differ_say_how() {
    let member = shape(CovarianceType::Full);
    assert_eq!(member.mismatch(&member), None);
    let other = Shape {
        n_components: 4,
        covariance_type: CovarianceType::Diag,
        ..shape(CovarianceType::Full)
    };
    let why = other.mismatch(&member).expect("a mismatch");
    assert!(
        why.contains("covariance type diag (this member: full)"),
        "{why}"
    );
    assert!(why.contains("4 components (this member: 3)"), "{why}");
    let unknown_d = Shape {
        n_features: 0,
        ..member.clone()
    };
    assert_eq!(member.mismatch(&unknown_d), None, "d unknown yet");
    let seconds = Shape {
        unit: HalfLifeUnit::Seconds,
        ..member.clone()
    };
    assert!(seconds
        .mismatch(&member)
        .expect("differs")
        .contains("half-life"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = StateRecord::decode(&bytes);
        let mut with_magic = STATE_MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = StateRecord::decode(&with_magic);
    }

    #[test]
    fn mutated_payloads_never_panic(
        which in 0usize..10,
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let records = all_records();
        let bytes = records[which % records.len()].encode();
        let kind = bytes[20];
        let mut p = bytes[29..bytes.len() - 4].to_vec();
        let i = at.index(p.len());
        p[i] = value;
        let _ = StateRecord::decode(&framed(kind, &p));
        let keep = cut.index(p.len() + 1);
        let _ = StateRecord::decode(&framed(kind, &p[..keep]));
    }
}
