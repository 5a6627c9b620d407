use nalgebra::{DMatrix, DVector};
use serde_json::Value;

use super::*;
use crate::sink::write_line;
use gmm_model::{points_from_rows, Covariances, EvalRequest, GaussianMixture};

fn record(responsibilities: &[f64]) -> ScoreRecord<'_> {
    ScoreRecord {
        log_density: -3.141_592_653_589_793_e-7,
        cluster: 1,
        responsibilities,
        anomaly: false,
        threshold: Some(-12.000_000_000_000_002),
        model_version: Some(42),
        kafka: None,
    }
}

fn json(record: &ScoreRecord<'_>) -> String {
    let mut out = Vec::new();
    record.write_json(&mut out).expect("serializes");
    String::from_utf8(out).expect("utf8")
}

#[test]
fn records_carry_the_reference_fields_in_order_and_floats_round_trip() {
    let r = [0.1 + 0.2, 1.0 - (0.1 + 0.2)];
    let rec = record(&r);
    let text = json(&rec);
    assert!(
        text.starts_with(r#"{"log_density":-3.141592653589793e-7,"cluster":1,"responsibilities":[0.30000000000000004,"#),
        "{text}"
    );
    assert!(
        text.ends_with(r#""anomaly":false,"threshold":-12.000000000000002,"model_version":42}"#)
    );
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["log_density"].as_f64(), Some(rec.log_density));
    assert_eq!(v["responsibilities"][1].as_f64(), Some(r[1]));
    assert!(v.get("topic").is_none());
}

#[test]
fn records_of_score_carry_the_flag_only_with_a_threshold() {
    let r = [1.0];
    let mut rec = record(&r);
    rec.model_version = None;
    assert_eq!(
        json(&rec),
        r#"{"log_density":-3.141592653589793e-7,"cluster":1,"responsibilities":[1.0],"anomaly":false}"#
    );
    rec.threshold = None;
    assert_eq!(
        json(&rec),
        r#"{"log_density":-3.141592653589793e-7,"cluster":1,"responsibilities":[1.0]}"#
    );
}

#[test]
fn kafka_positions_and_missing_thresholds() {
    let mut rec = record(&[1.0]);
    rec.threshold = None;
    rec.log_density = f64::NEG_INFINITY;
    rec.kafka = Some(KafkaPosition {
        topic: "points \"eu\"",
        partition: 3,
        offset: 1 << 40,
    });
    let v: Value = serde_json::from_str(&json(&rec)).expect("valid JSON");
    assert_eq!(v["threshold"], Value::Null);
    assert_eq!(v["log_density"], Value::Null);
    assert_eq!(v["topic"], "points \"eu\"");
    assert_eq!(v["partition"], 3);
    assert_eq!(v["offset"], 1u64 << 40);
    let mut scratch = Vec::new();
    let message = rec.kafka_message(&mut scratch);
    assert_eq!(message.key.as_deref(), Some("points \"eu\":3"));
    assert_eq!(message.payload, json(&rec).as_bytes());
}

#[test]
fn records_from_an_evaluation_match_the_model() {
    let model = GaussianMixture::new(
        DVector::from_vec(vec![0.5, 0.5]),
        DMatrix::from_row_slice(1, 2, &[0.0, 10.0]),
        Covariances::Spherical(DVector::from_vec(vec![1.0, 1.0])),
    )
    .expect("valid");
    let flat = [0.1, 9.5, 40.0];
    let x = points_from_rows(&flat, 1).expect("points");
    let eval = model.evaluate(x, EvalRequest::ALL).expect("evaluate");
    let threshold = Some(-20.0);
    let recs: Vec<_> = (0..3)
        .map(|j| ScoreRecord::from_evaluation(&eval, j, threshold).by_model(7))
        .collect();
    assert_eq!(
        recs.iter().map(|r| r.cluster).collect::<Vec<_>>(),
        [0, 1, 1]
    );
    assert_eq!(
        recs.iter().map(|r| r.anomaly).collect::<Vec<_>>(),
        [false, false, true]
    );
    for (j, r) in recs.iter().enumerate() {
        assert_eq!(r.log_density, eval.log_density[j]);
        assert_eq!(
            r.responsibilities,
            eval.responsibilities.column(j).as_slice()
        );
        assert!((r.responsibilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    let mut out = Vec::new();
    for (i, mut rec) in recs.into_iter().enumerate() {
        rec.kafka = Some(KafkaPosition {
            topic: "t",
            partition: 0,
            offset: 100 + i as i64,
        });
        write_line(&mut out, &rec).expect("write");
    }
    let lines: Vec<Value> = String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["anomaly"], true);
    assert_eq!(lines[2]["offset"], 102);
    assert_eq!(lines[0]["model_version"], 7);
}
