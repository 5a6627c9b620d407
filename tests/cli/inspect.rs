//! `gmm-stream inspect`: the human summary and the JSON object.

use gmm_io::{EstimatorInfo, KafkaOffsets, ModelFile, Positions};
use gmm_model::{CovarianceType, OnlineEm, OnlineSettings};
use serde_json::Value;

use super::support::*;

fn inspect_json(path: &str) -> Value {
    let r = run(&["inspect", path, "--json"]).ok();
    serde_json::from_slice(&r.stdout).expect("one JSON object")
}

#[test]
fn the_human_summary_names_everything() {
    let path = reference("cli_full.model.json");
    let text = run(&["inspect", arg(&path)]).ok().stdout_text();
    for needle in [
        "gmm-stream.model version 1, JSON",
        "covariance type    full",
        "components         3",
        "features           3",
        "points seen        0",
        "updated at         2026-11-22T00:00:00Z",
        "estimator          batch (",
        "anomaly threshold  none",
        "positions          none",
        "component 0: weight 0.5",
        "component 2: weight 0.2",
        "mean      [9, 11, 10.5]",
        "log-determinant",
        "condition number",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn json_holds_every_parameter_in_full() {
    for t in COVARIANCE_TYPES {
        let path = reference(&format!("cli_{t}.model.json"));
        let model_json: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("model")).expect("JSON");
        let model = load(&path).1;
        let v = inspect_json(arg(&path));
        assert_eq!(v["encoding"], "json");
        assert_eq!(v["covariance_type"], t);
        assert_eq!(
            (v["n_components"].as_u64(), v["n_features"].as_u64()),
            (Some(3), Some(3))
        );
        assert_eq!(v["estimator"]["kind"], "batch");
        assert!(v["state"].is_null() && v["positions"].is_null());
        let components = v["components"].as_array().expect("components");
        assert_eq!(components.len(), 3);
        for (k, c) in components.iter().enumerate() {
            assert_eq!(c["weight"], model_json["weights"][k], "{t}");
            assert_eq!(c["mean"], model_json["means"][k], "{t}");
            let cov = match t {
                "tied" => model_json["covariances"].clone(),
                _ => model_json["covariances"][k].clone(),
            };
            assert_eq!(c["covariance"], cov, "{t}: in the layout of the type");
            let full = model.covariances().component_matrix(k, 3);
            let log_det = full.determinant().ln();
            let got = c["log_det"].as_f64().expect("log_det");
            assert!(
                (got - log_det).abs() < 1e-12 * log_det.abs().max(1.0),
                "{t}: {got} vs {log_det}"
            );
            let sd = f64s(&c["std_devs"]);
            for i in 0..3 {
                assert_eq!(sd[i], full[(i, i)].sqrt(), "{t}");
            }
            let cond = c["condition_number"].as_f64().expect("condition number");
            assert!(
                cond >= 1.0 && (t != "spherical" || cond == 1.0),
                "{t}: {cond}"
            );
        }
    }
}

#[test]
fn a_snapshot_shows_its_state_positions_and_threshold() {
    let dir = tempdir();
    let model = load(&reference("cli_full.model.json")).1;
    let settings = OnlineSettings {
        covariance_type: CovarianceType::Full,
        ..OnlineSettings::new(3)
    };
    let est = OnlineEm::from_model(settings.clone(), model.clone(), 50.0).expect("estimator");
    let mut file = ModelFile::new(
        &model,
        EstimatorInfo::Online(settings),
        "2026-11-22T12:00:00Z".into(),
    );
    file.state = Some(est.state().clone());
    file.anomaly_threshold = Some(-12.5);
    file.points_seen = 1234;
    let offsets: KafkaOffsets = [("points".to_owned(), 0, 41), ("points".to_owned(), 1, 7)]
        .into_iter()
        .collect();
    file.positions = Some(Positions::Kafka(offsets));
    let path = write(dir.path(), "snap.bin", file.to_binary().expect("binary"));

    let text = run(&["inspect", arg(&path)]).ok().stdout_text();
    for needle in [
        ", binary",
        "points seen        1234",
        "estimator          online (",
        "anomaly threshold  -12.5",
        "state              online estimator state:",
        "positions          kafka next offsets points[0]=41, points[1]=7",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let v = inspect_json(arg(&path));
    assert_eq!(v["encoding"], "binary");
    assert_eq!(v["anomaly_threshold"], -12.5);
    assert_eq!(v["estimator"]["kind"], "online");
    assert_eq!(v["positions"]["kafka"]["points"]["0"], 41);
    assert!(v["state"]["has_statistics"].is_boolean());
}
