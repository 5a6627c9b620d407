//! Loading, layering and validation; the shipped config files.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

fn load(text: Option<&str>, env: &[(&str, &str)], sets: &[&str]) -> Result<Config, ConfigError> {
    let f = text.map(file);
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load_from(f.as_ref().map(|f| f.path()), &env, &sets)
}

#[test]
fn defaults_are_valid_and_run_the_generator() {
    let c = load(None, &[], &[]).expect("defaults");
    assert_eq!(c, Config::default());
    assert_eq!(c.source.kind, SourceKind::Generator);
}

#[test]
fn layers_apply_in_order_file_env_set() {
    let text = "[model]\ncomponents = 5\n[estimator]\nbatch_size = 100\nhalf_life = 500\n";
    let c = load(
        Some(text),
        &[
            ("GMM_STREAM__MODEL__COMPONENTS", "6"),
            ("GMM_STREAM__ESTIMATOR__SCHEDULE", "stepwise"),
        ],
        &["model.components=7", "kafka.topics=[\"a\", \"b\"]"],
    )
    .expect("loads");
    assert_eq!(c.model.components, 7);
    assert_eq!(c.estimator.batch_size, 100);
    assert_eq!(c.estimator.half_life, 500.0);
    assert_eq!(c.estimator.schedule, ScheduleKind::Stepwise);
    assert_eq!(c.kafka.topics, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn unknown_keys_are_errors_that_name_them() {
    let err = load(Some("[source]\nfromat = \"csv\"\n"), &[], &[]).expect_err("unknown");
    let msg = err.to_string();
    assert!(msg.contains("fromat"), "{msg}");
    let err = load(None, &[], &["estimator.batchsize=3"]).expect_err("unknown");
    assert!(err.to_string().contains("batchsize"), "{err}");
    let err = load(None, &[("GMM_STREAM__NOPE__X", "1")], &[]).expect_err("unknown");
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(matches!(
        load(None, &[], &["components=3"]),
        Err(ConfigError::BadSet(_))
    ));
}

#[test]
fn file_errors_name_the_file_on_one_line() {
    let f = file("[source]\nformat = \n");
    let err = Config::load_from(Some(f.path()), &[], &[]).expect_err("syntax");
    let msg = err.to_string();
    assert!(msg.contains(&f.path().display().to_string()), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    let f = file("[source]\nfromat = \"csv\"\n");
    let err = Config::load_from(Some(f.path()), &[], &[]).expect_err("unknown");
    assert!(
        err.to_string().contains(&f.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn file_errors_name_the_file_as_the_user_spelt_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::fs::write(dir.path().join("bad.toml"), "[source]\nfromat = \"csv\"\n").expect("write");
    let spelt = dir.path().join("sub").join("..").join("bad.toml");
    let err = Config::load_from(Some(&spelt), &[], &[]).expect_err("unknown");
    assert!(
        err.to_string().contains(&spelt.display().to_string()),
        "{err}"
    );
}

#[test]
fn invalid_values_name_their_key() {
    let cases = [
        ("estimator.batch_size=0", "estimator.batch_size"),
        ("estimator.stepwise_alpha=0.4", "estimator.stepwise_alpha"),
        ("scores.anomaly_quantile=0.7", "scores.anomaly_quantile"),
        ("scores.sink=file", "scores.path"),
        ("snapshot.keep=0", "snapshot.keep"),
        ("source.kind=file", "source.path"),
        ("model.covariance_type=round", "covariance_type"),
        ("estimator.half_life=-3", "estimator.half_life"),
    ];
    for (set, key) in cases {
        let err = load(None, &[], &[set]).expect_err(set);
        assert!(err.to_string().contains(key), "{set}: {err}");
    }
    let err = load(
        None,
        &[],
        &[
            "source.kind=file",
            "source.path=x.bin",
            "source.format=f64le",
        ],
    )
    .expect_err("dim");
    assert!(err.to_string().contains("source.dim"), "{err}");
}

#[test]
fn listen_addresses_must_be_host_and_port() {
    for listen in [
        "notanaddr",
        "127.0.0.1",
        "127.0.0.1:99999",
        ":9464",
        "a b:80",
    ] {
        let set = format!("http.listen={listen}");
        let err = load(None, &[], &[&set]).expect_err(listen);
        assert!(err.to_string().starts_with("http.listen: "), "{err}");
    }
    for listen in ["127.0.0.1:0", "[::1]:9464", "localhost:9464", ""] {
        let set = format!("http.listen=\"{listen}\"");
        load(None, &[], &[&set]).expect(listen);
    }
}

#[test]
fn a_reachable_listen_address_needs_a_token_or_an_explicit_opt_out() {
    for listen in [
        "0.0.0.0:9464",
        "[::]:9464",
        "10.1.2.3:80",
        "gmm.internal:9464",
    ] {
        let set = format!("http.listen={listen}");
        let err = load(None, &[], &[&set]).expect_err(listen);
        let msg = err.to_string();
        assert!(
            msg.starts_with("http.listen: ") && msg.contains("token"),
            "{msg}"
        );
        load(None, &[], &[&set, "http.token=s3cret"]).expect("a token");
        load(None, &[("GMM_STREAM_HTTP_TOKEN", "s3cret")], &[&set]).expect("env token");
        load(None, &[], &[&set, "http.allow_unauthenticated=true"]).expect("opted out");
    }
}

#[test]
fn the_bound_on_coordinates_is_positive_and_at_most_the_estimator_limit() {
    let c = load(None, &[], &["source.max_abs_value=1e6"]).expect("a lower bound");
    assert_eq!(c.source.max_abs_value, 1e6);
    for bad in ["0", "-1", "1e101", "inf", "nan"] {
        let set = format!("source.max_abs_value={bad}");
        let err = load(None, &[], &[&set]).expect_err(bad);
        assert!(err.to_string().contains("source.max_abs_value"), "{err}");
    }
}

#[test]
fn group_settings_are_checked_and_name_their_key() {
    let kafka = ["source.kind=kafka", "source.format=json"];
    let with = |extra: &[&str]| {
        let sets: Vec<&str> = kafka.iter().chain(extra).copied().collect();
        load(None, &[], &sets)
    };
    with(&[
        "kafka.state_topic=\"gmm-state\"",
        "kafka.group_instance_id=\"a-1\"",
    ])
    .expect("a state topic and an instance id");
    let cases: [(&[&str], &str); 4] = [
        (
            &["kafka.state_topic=\"points\""],
            "must not be one of kafka.topics",
        ),
        (&["kafka.state_topic=\"a b\""], "kafka.state_topic"),
        (
            &["kafka.state_topic=\"s\"", "estimator.schedule=\"stepwise\""],
            "kafka.state_topic",
        ),
        (
            &["kafka.group_instance_id=\"a b\""],
            "kafka.group_instance_id",
        ),
    ];
    for (sets, key) in cases {
        let err = with(sets).expect_err(key);
        assert!(err.to_string().contains(key), "{sets:?}: {err}");
    }
    let err = load(None, &[], &["kafka.state_topic=\"s\""]).expect_err("generator");
    assert!(err.to_string().contains("kafka.state_topic"), "{err}");
}

#[test]
fn kafka_properties_keep_their_dotted_names() {
    let c = load(
        Some("[kafka.properties]\n\"socket.timeout.ms\" = \"5000\"\n"),
        &[("GMM_STREAM__KAFKA__PROPERTIES__SASL_USERNAME", "me")],
        &["kafka.properties.security.protocol=SASL_SSL"],
    )
    .expect("loads");
    let p = &c.kafka.properties;
    assert_eq!(p.get("socket.timeout.ms").map(String::as_str), Some("5000"));
    assert_eq!(p.get("sasl.username").map(String::as_str), Some("me"));
    assert_eq!(
        p.get("security.protocol").map(String::as_str),
        Some("SASL_SSL")
    );
}

#[test]
fn half_life_inf_never_forgets_and_stepwise_t0_defaults_to_warmup_batches() {
    let c = load(None, &[], &["estimator.half_life=inf"]).expect("inf");
    assert!(matches!(
        c.online_settings().schedule,
        Schedule::Decay {
            half_life: None,
            ..
        }
    ));
    let c = load(
        None,
        &[],
        &["estimator.schedule=stepwise", "estimator.batch_size=500"],
    )
    .expect("stepwise");
    assert_eq!(
        c.online_settings().schedule,
        Schedule::Stepwise {
            alpha: 0.7,
            t0: 4.0
        }
    );
}

#[test]
fn a_missing_file_is_reported() {
    let err =
        Config::load_from(Some(Path::new("/nonexistent/gmm.toml")), &[], &[]).expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/gmm.toml"), "{err}");
}

mod shipped_files {
    use super::*;

    fn shipped(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name)
    }

    #[test]
    fn default_toml_documents_exactly_the_built_in_defaults() {
        let c = Config::load_from(Some(&shipped("default.toml")), &[], &[]).expect("loads");
        assert_eq!(c, Config::default());
        // And every key is in the file: the same key paths as the defaults.
        let text = std::fs::read_to_string(shipped("default.toml")).expect("read");
        let file: toml::Table = toml::from_str(&text).expect("parses");
        let defaults = toml::Table::try_from(Config::default()).expect("serializes");
        assert_eq!(key_paths(&file, ""), key_paths(&defaults, ""));
    }

    fn key_paths(table: &toml::Table, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in table {
            let path = format!("{prefix}{k}");
            match v {
                toml::Value::Table(t) if k != "properties" => {
                    out.extend(key_paths(t, &format!("{path}.")))
                }
                _ => out.push(path),
            }
        }
        out.sort();
        out
    }

    #[test]
    fn kafka_toml_listens_for_other_hosts_only_with_a_token() {
        let path = shipped("kafka.toml");
        let err = Config::load_from(Some(&path), &[], &[]).expect_err("no token");
        assert!(err.to_string().contains("http.listen"), "{err}");
        let env = [("GMM_STREAM_HTTP_TOKEN".to_string(), "s3cret".to_string())];
        let c = Config::load_from(Some(&path), &env, &[]).expect("loads");
        assert_eq!(c.source.kind, SourceKind::Kafka);
    }

    #[test]
    fn demo_toml_is_valid() {
        let c = Config::load_from(Some(&shipped("demo.toml")), &[], &[]).expect("loads");
        assert_eq!(c.source.kind, SourceKind::Generator);
    }
}
