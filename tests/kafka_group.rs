//! One model across a consumer group through a state topic (`kafka.state_topic`),
//! against the real broker (tansu) with an independent producer (confluent-kafka):
//! six partitions each carrying one cluster of a six-cluster mixture, three members.
//!
//! - Every member's model scores held-out points of all six clusters within a small
//!   gap of one daemon that read everything (the lone daemon, a group of its own),
//!   and the members agree with each other.
//! - A member killed with SIGKILL partway and restarted: every member's
//!   `points_seen` equals the number of points produced (none lost or counted twice).
//! - A member that joins once the stream is quiet adopts the group's model: all
//!   members' models are then the same (1e-12 relative).
//! - An abrupt change of every cluster: one recovery for the group, and two group
//!   half-lives later the members score the moved clusters as one daemon does.
//! - A missing state topic, and a state topic holding another model's records, are
//!   refused at start-up (exit 2) naming the topic and partition.
//!
//! The reference "one daemon" reads the same points in the produced order from a
//! file: one daemon reading them from Kafka gets them in the order the broker's
//! fetches hand out and its own warm-up may miss clusters (seen: 0.3 to 1.1
//! nats/point below the truth), which would make the comparison meaningless.
//!
//! tansu's group coordinator sometimes completes a rebalance without every member
//! (tests/kafka_e2e.rs); points_seen is exact all the same, since statistics and
//! offsets travel in one record, so the test does not retry.

#[path = "common/kafka.rs"]
mod kafka_common;

use std::path::Path;
use std::time::{Duration, Instant};

use gmm_io::ModelFile;
use gmm_model::{Covariances, GaussianMixture};
use kafka_common::*;
use nalgebra::{DMatrix, DVector};

const CLUSTERS: usize = 6;
const POINTS_PER_MESSAGE: usize = 10;
const MESSAGES_PER_PARTITION: usize = 500;

/// Six 2-d clusters on a circle, each with its own shape.
fn six_clusters() -> GaussianMixture {
    let mut means = DMatrix::zeros(2, CLUSTERS);
    let mut covs = Vec::new();
    for k in 0..CLUSTERS {
        let a = k as f64 * std::f64::consts::TAU / CLUSTERS as f64;
        means[(0, k)] = 40.0 * a.cos();
        means[(1, k)] = 40.0 * a.sin();
        let (s, c) = (0.6 + 0.15 * k as f64, 0.25 * ((k % 3) as f64 - 1.0));
        covs.push(DMatrix::from_row_slice(2, 2, &[s, c, c, 0.8]));
    }
    GaussianMixture::new(
        DVector::from_element(CLUSTERS, 1.0 / CLUSTERS as f64),
        means,
        Covariances::Full(covs),
    )
    .expect("a valid mixture")
}

/// Points of cluster `k` only.
fn cluster(k: usize, n: usize, seed: u64) -> Vec<f64> {
    let m = six_clusters();
    let one = GaussianMixture::new(
        DVector::from_element(1, 1.0),
        m.means().columns(k, 1).into_owned(),
        Covariances::Full(vec![match m.covariances() {
            Covariances::Full(c) => c[k].clone(),
            _ => unreachable!("full covariances"),
        }]),
    )
    .expect("one cluster");
    sample(&one, n, seed)
}

/// Partition p carries cluster p; messages interleave the partitions so that every
/// member's warm-up sample grows at once.
fn messages() -> (Vec<Outgoing>, usize) {
    let per = POINTS_PER_MESSAGE * MESSAGES_PER_PARTITION;
    let data: Vec<Vec<f64>> = (0..CLUSTERS)
        .map(|k| cluster(k, per, 100 + k as u64))
        .collect();
    let mut out = Vec::new();
    for i in 0..MESSAGES_PER_PARTITION {
        for (p, points) in data.iter().enumerate() {
            let block = &points[2 * POINTS_PER_MESSAGE * i..2 * POINTS_PER_MESSAGE * (i + 1)];
            out.push(Outgoing {
                partition: p as i32,
                value: Some(f64le(block)),
            });
        }
    }
    (out, per * CLUSTERS)
}

fn settings(b: &str, topic: &str, group: &str, dir: &Path) -> DaemonSettings {
    let mut s = DaemonSettings::new(b, topic, group, dir);
    s.dim = 2;
    s.components = CLUSTERS;
    s.batch_size = 200;
    s.properties = vec![
        ("session.timeout.ms".into(), "10000".into()),
        ("heartbeat.interval.ms".into(), "1000".into()),
    ];
    s
}

/// Starts a daemon on `s`, a member of the group sharing `state` when given; the
/// same warm-up and half-life for all.
fn start(s: &DaemonSettings, state: Option<&str>, log: &str) -> Daemon {
    start_with(s, state, log, WARMUP)
}

/// [`start`] with other estimator settings.
fn start_with(s: &DaemonSettings, state: Option<&str>, log: &str, estimator: &str) -> Daemon {
    // Static membership: a member restarted under its name gets its partitions
    // back without waiting for the session timeout.
    let name = s
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let group_keys = state
        .map(|t| {
            format!("state_topic = \"{t}\"\nstate_wait_ms = 5000\ngroup_instance_id = \"{name}\"\n")
        })
        .unwrap_or_default();
    let toml = s
        .toml()
        .replace(
            "[kafka.properties]",
            &format!("{group_keys}\n[kafka.properties]"),
        )
        .replace("[estimator]\n", &format!("[estimator]\n{estimator}"));
    std::fs::write(s.dir.with_extension("toml"), toml).expect("write the config");
    Daemon::start_with_config(s, log)
}

/// The model of one daemon that read every point, in the order produced (the
/// partitions interleaved), from a file: the reference the group must match.
/// (Reading them from Kafka, one daemon gets them in the order the broker's
/// fetches hand out, partition by partition, and its warm-up may miss clusters.)
fn lone_daemon(points: &[f64], dir: &Path) -> ModelFile {
    lone_daemon_with(points, dir, WARMUP)
}

fn lone_daemon_with(points: &[f64], dir: &Path, estimator: &str) -> ModelFile {
    let data = dir.join("all-points.f64");
    std::fs::write(&data, f64le(points)).expect("write the points");
    let config = dir.join("lone.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nkind = \"file\"\npath = \"{}\"\nformat = \"f64le\"\ndim = 2\n\n\
             [model]\ncomponents = {CLUSTERS}\n\n[estimator]\nbatch_size = 200\n{estimator}\n\
             [snapshot]\ndir = \"{}\"\n\n[http]\nlisten = \"\"\n",
            data.display(),
            dir.join("lone").display()
        ),
    )
    .expect("write the config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gmm-stream"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run the lone daemon");
    assert!(
        out.status.success(),
        "the lone daemon failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    newest_snapshot(&dir.join("lone")).expect("the lone daemon's snapshot")
}

/// The estimator settings every daemon of the test shares.
const WARMUP: &str = "warmup_points = 3000\nhalf_life = 100000\nseed = 7\n";

/// The daemons' logs but their status lines.
fn logs(daemons: &[Daemon]) -> String {
    let text: Vec<String> = daemons
        .iter()
        .map(|d| {
            let log = d.log_text();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" status ")).collect();
            lines.join("\n")
        })
        .collect();
    text.join("\n-----\n")
}

fn held_out() -> Vec<f64> {
    (0..CLUSTERS)
        .flat_map(|k| cluster(k, 1000, 900 + k as u64))
        .collect()
}

/// The partitions some running daemon owns, as their logs say (the last
/// assignment not given up since).
fn owned(daemons: &[Daemon]) -> std::collections::BTreeSet<i32> {
    let mut all = std::collections::BTreeSet::new();
    for d in daemons {
        let log = d.log_text();
        let assigned = log.rfind("partitions assigned partitions=");
        let given_up = log.rfind("partitions given up");
        let (Some(a), g) = (assigned, given_up) else {
            continue;
        };
        if g.is_some_and(|g| g > a) {
            continue;
        }
        let line = log[a..].lines().next().unwrap_or_default();
        for part in line.split('[').skip(1) {
            if let Some(p) = part.split(']').next().and_then(|p| p.parse().ok()) {
                all.insert(p);
            }
        }
    }
    all
}

/// Waits until every daemon's newest snapshot counts `total` points. Err when it
/// does not and the broker's coordinator left a partition to no running member
/// (a tansu defect, see the module's comment), a panic for any other failure.
fn wait_all(
    dirs: &[&Path],
    daemons: &mut [Daemon],
    total: u64,
    timeout: Duration,
) -> Result<Vec<ModelFile>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let snaps: Vec<Option<ModelFile>> = dirs.iter().map(|d| newest_snapshot(d)).collect();
        if snaps
            .iter()
            .all(|s| s.as_ref().is_some_and(|m| m.points_seen == total))
        {
            return Ok(snaps.into_iter().flatten().collect());
        }
        for d in daemons.iter_mut() {
            d.assert_running();
        }
        if Instant::now() > deadline {
            let seen: Vec<Option<u64>> = snaps
                .iter()
                .map(|s| s.as_ref().map(|m| m.points_seen))
                .collect();
            let owned = owned(daemons);
            if owned.len() < CLUSTERS {
                return Err(format!(
                    "points_seen {seen:?} of {total}: the broker's coordinator left partitions to no running member (owned: {owned:?})"
                ));
            }
            let logs: Vec<String> = daemons.iter().map(Daemon::log_text).collect();
            panic!(
                "points_seen {seen:?}, expected {total} everywhere; logs:\n{}",
                logs.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_members_share_one_model_through_a_kill_and_a_late_joiner() {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match attempt_kill_and_late_joiner() {
            Ok(()) => return,
            Err(why) => eprintln!("attempt {attempt}: {why}; trying again in fresh topics"),
        }
    }
    panic!("{ATTEMPTS} attempts, each with a partition the broker assigned to no running member");
}

fn attempt_kill_and_late_joiner() -> Result<(), String> {
    let b = brokers();
    let topic = unique("group-points");
    let state = unique("group-state");
    let group = unique("group");
    let models_topic = unique("group-models");
    create_topics(b, &[(&topic, CLUSTERS as i32), (&models_topic, 1)]);
    create_state_topic(b, &state);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = |name: &str| tmp.path().join(name);
    let mut members: Vec<DaemonSettings> = (0..4)
        .map(|i| {
            let mut s = settings(b, &topic, &group, &dir(&format!("member{i}")));
            s.snapshot_topic = Some(models_topic.clone());
            s
        })
        .collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    members[0].http_listen = format!("127.0.0.1:{port}");
    let mut running: Vec<Daemon> = (0..3)
        .map(|i| start(&members[i], Some(&state), &format!("member{i}.log")))
        .collect();
    // The points come once the three own every partition (and the lone daemon
    // too), so that every member's warm-up sample holds its clusters.
    let deadline = Instant::now() + Duration::from_secs(60);
    while owned(&running).len() < CLUSTERS {
        assert!(
            Instant::now() < deadline,
            "the members never owned every partition:\n{}",
            logs(&running)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (outgoing, total) = messages();
    let producer = spawn_python_producer(b, &topic, &outgoing, 600.0);
    // About a third of the stream in: kill member 1 and start it again.
    std::thread::sleep(Duration::from_secs(2));
    running.remove(1).kill_9();
    std::thread::sleep(Duration::from_secs(1));
    running.insert(1, start(&members[1], Some(&state), "member1-restarted.log"));
    let produced = finish_python_producer(producer);
    assert_eq!(produced.len(), outgoing.len());
    let total = total as u64;
    let dirs: Vec<&Path> = members[..3].iter().map(|m| m.dir.as_path()).collect();
    let models = wait_all(&dirs, &mut running, total, Duration::from_secs(60))?;
    let points: Vec<f64> = outgoing
        .iter()
        .flat_map(|m| m.value.as_deref().unwrap_or_default().chunks(8))
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let lone_model = lone_daemon(&points, tmp.path());
    assert_eq!(lone_model.points_seen, total);

    let x = held_out();
    let reference = mean_log_likelihood(&lone_model, &x);
    let scores: Vec<f64> = models.iter().map(|m| mean_log_likelihood(m, &x)).collect();
    let gaps: Vec<f64> = scores.iter().map(|s| reference - s).collect();
    eprintln!("held-out mean log-likelihood: lone daemon {reference:.5}, members {scores:?}, gaps {gaps:?}");
    for (i, gap) in gaps.iter().enumerate() {
        assert!(
            gap.abs() < 0.02,
            "member {i} scores {gap} nats/point from the lone daemon; the members' logs:\n{}",
            logs(&running)
        );
    }
    // What an operator sees of the group on member 0: /model counts the group's
    // points, and the metrics every partition's lag and the group's state.
    let get = |path: &str| {
        ureq::get(&format!("http://127.0.0.1:{port}{path}"))
            .timeout(Duration::from_secs(5))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_string()
            .expect("a body")
    };
    let model: serde_json::Value = serde_json::from_str(&get("/model")).expect("JSON");
    assert_eq!(model["points_seen"].as_u64(), Some(total));
    let metrics = get("/metrics");
    for p in 0..CLUSTERS {
        let series = format!("gmm_kafka_consumer_lag{{partition=\"{p}\",topic=\"{topic}\"}}");
        let alt = format!("gmm_kafka_consumer_lag{{topic=\"{topic}\",partition=\"{p}\"}}");
        assert!(
            metrics.contains(&series) || metrics.contains(&alt),
            "no lag of partition {p}:\n{metrics}"
        );
    }
    for line in ["gmm_group_partitions_known 6", "gmm_group_model_epoch 1"] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    let spread = scores.iter().cloned().fold(f64::MIN, f64::max)
        - scores.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.01, "the members disagree by {spread} nats/point");

    // A fourth member joins the quiet group: it adopts the group's model.
    running.push(start(&members[3], Some(&state), "member3.log"));
    let dirs: Vec<&Path> = members.iter().map(|m| m.dir.as_path()).collect();
    let models = wait_all(&dirs, &mut running, total, Duration::from_secs(60))?;
    // On a quiet stream every member holds the same newest states: the same model.
    let first = models[0].mixture().expect("a model");
    for (i, m) in models.iter().enumerate().skip(1) {
        let m = m.mixture().expect("a model");
        let rel = |a: &DMatrix<f64>, b: &DMatrix<f64>| (a - b).norm() / b.norm();
        let (dw, dm) = (
            (m.weights() - first.weights()).norm() / first.weights().norm(),
            rel(m.means(), first.means()),
        );
        assert!(
            dw < 1e-12 && dm < 1e-12,
            "member {i}'s model differs from member 0's: weights {dw:e}, means {dm:e} (relative)"
        );
    }
    let late = mean_log_likelihood(&models[3], &x);
    assert!(
        (late - reference).abs() < 0.02,
        "the late joiner scores {late}, the lone daemon {reference}"
    );
    for d in running {
        assert_eq!(d.terminate(Duration::from_secs(30)), 0);
    }
    one_member_at_a_time_publishes(b, &models_topic);
    Ok(())
}

/// The snapshot topic is published by one member at a time (the owner of the lowest
/// input partition): the publisher changes only when partitions move, a handful of
/// times in the run, where every member publishing would alternate on every snapshot.
fn one_member_at_a_time_publishes(b: &str, topic: &str) {
    let messages = read_topic(b, topic, 1, Duration::from_secs(3), Duration::from_secs(30));
    let publishers: Vec<String> = messages
        .iter()
        .map(|m| {
            let v: serde_json::Value =
                serde_json::from_slice(m.value.as_deref().unwrap_or_default()).expect("JSON");
            assert!(
                v["group"]["records"]
                    .as_array()
                    .is_some_and(|r| r.is_empty()),
                "a published model carries the member's state records: {}",
                v["group"]
            );
            v["group"]["member"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let switches = publishers.windows(2).filter(|w| w[0] != w[1]).count();
    eprintln!(
        "snapshot topic: {} models, publisher changed {switches} times",
        publishers.len()
    );
    // How many models go out depends on when the stream goes quiet (7 to 44 seen);
    // members publishing side by side would alternate on nearly every one of them.
    assert!(
        publishers.len() >= 2,
        "only {} models published",
        publishers.len()
    );
    assert!(
        publishers.iter().all(|p| !p.is_empty()),
        "a published model does not name its member"
    );
    assert!(
        switches <= 8,
        "the publisher changed {switches} times in {} models: {publishers:?}",
        publishers.len()
    );
}

/// Runs a daemon on `s` (a group member on `state`) that must stop at start-up with
/// exit status 2; returns its log.
fn refused(s: &DaemonSettings, state: &str, log: &str) -> String {
    let mut d = start(s, Some(state), log);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = d.child.try_wait().expect("wait") {
            assert_eq!(
                status.code(),
                Some(2),
                "exit status; log:\n{}",
                d.log_text()
            );
            return d.log_text();
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_missing_state_topic_or_a_state_topic_of_another_model_is_refused() {
    let b = brokers();
    let topic = unique("group-points");
    let state = unique("group-state");
    let group = unique("group");
    create_topics(b, &[(&topic, 2)]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let s = settings(b, &topic, &group, &tmp.path().join("a"));
    let log = refused(&s, &state, "missing.log");
    assert!(
        log.contains(&state),
        "the error names the state topic:\n{log}"
    );

    create_state_topic(b, &state);
    // A state record of a 6-component model...
    let mut writer = start(&s, Some(&state), "writer.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !writer.log_text().contains("read the state topic up to now") {
        writer.assert_running();
        assert!(
            Instant::now() < deadline,
            "the member never caught up:\n{}",
            writer.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let points = cluster(0, 4000, 5);
    let outgoing: Vec<Outgoing> = points
        .chunks(2 * POINTS_PER_MESSAGE)
        .enumerate()
        .map(|(i, c)| Outgoing {
            partition: (i % 2) as i32,
            value: Some(f64le(c)),
        })
        .collect();
    produce_with_python(b, &topic, &outgoing, 0.0);
    wait_for_snapshot(&s.dir, Duration::from_secs(60), &mut writer, |m| {
        m.points_seen > 0
    });
    assert_eq!(writer.terminate(Duration::from_secs(30)), 0);
    // ...is refused by a member of 4 components, naming the topic and its partition.
    let mut other = settings(b, &topic, &group, &tmp.path().join("b"));
    other.components = 4;
    let log = refused(&other, &state, "other.log");
    assert!(
        log.contains(&format!(
            "the state topic {state} (partition 0) holds a record"
        )) && log.contains("components"),
        "{log}"
    );
}

/// Points of every cluster moved by `shift`, interleaved over the partitions as
/// [`messages`] does.
fn shifted_messages(per_partition: usize, shift: f64, seed: u64) -> Vec<Outgoing> {
    let per = POINTS_PER_MESSAGE * per_partition;
    let data: Vec<Vec<f64>> = (0..CLUSTERS)
        .map(|k| {
            let mut c = cluster(k, per, seed + k as u64);
            c.iter_mut().step_by(2).for_each(|x| *x += shift);
            c
        })
        .collect();
    let mut out = Vec::new();
    for i in 0..per_partition {
        for (p, points) in data.iter().enumerate() {
            let block = &points[2 * POINTS_PER_MESSAGE * i..2 * POINTS_PER_MESSAGE * (i + 1)];
            out.push(Outgoing {
                partition: p as i32,
                value: Some(f64le(block)),
            });
        }
    }
    out
}

#[test]
fn an_abrupt_change_of_every_cluster_is_handled_once_for_the_group() {
    const ESTIMATOR: &str = "warmup_points = 3000\nhalf_life = 4000\nseed = 7\n";
    let b = brokers();
    let topic = unique("change-points");
    let state = unique("change-state");
    let group = unique("change-group");
    create_topics(b, &[(&topic, CLUSTERS as i32)]);
    create_state_topic(b, &state);
    let tmp = tempfile::tempdir().expect("temp dir");
    let members: Vec<DaemonSettings> = (0..3)
        .map(|i| settings(b, &topic, &group, &tmp.path().join(format!("member{i}"))))
        .collect();
    let mut running: Vec<Daemon> = members
        .iter()
        .enumerate()
        .map(|(i, m)| start_with(m, Some(&state), &format!("member{i}.log"), ESTIMATOR))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while owned(&running).len() < CLUSTERS {
        assert!(
            Instant::now() < deadline,
            "the members never owned every partition:\n{}",
            logs(&running)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // 24 000 points, then every cluster moves by 25: two group half-lives (8 040
    // points) later the members must have recovered as one daemon has.
    let mut outgoing = shifted_messages(400, 0.0, 300);
    outgoing.extend(shifted_messages(134, 25.0, 400));
    let producer = spawn_python_producer(b, &topic, &outgoing, 600.0);
    finish_python_producer(producer);
    let total = (outgoing.len() * POINTS_PER_MESSAGE) as u64;
    let dirs: Vec<&Path> = members.iter().map(|m| m.dir.as_path()).collect();
    let models = wait_all(&dirs, &mut running, total, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e}"));
    let points: Vec<f64> = outgoing
        .iter()
        .flat_map(|m| m.value.as_deref().unwrap_or_default().chunks(8))
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let lone = lone_daemon_with(&points, tmp.path(), ESTIMATOR);
    let x: Vec<f64> = (0..CLUSTERS)
        .flat_map(|k| {
            let mut c = cluster(k, 500, 990 + k as u64);
            c.iter_mut().step_by(2).for_each(|v| *v += 25.0);
            c
        })
        .collect();
    let reference = mean_log_likelihood(&lone, &x);
    let scores: Vec<f64> = models.iter().map(|m| mean_log_likelihood(m, &x)).collect();
    let log = logs(&running);
    let recoveries = running[0].log_text().matches("change=Recovery ").count();
    eprintln!("after the change: lone daemon {reference:.4}, members {scores:?}; recoveries adopted by member 0: {recoveries}");
    for (i, s) in scores.iter().enumerate() {
        assert!(
            (reference - s).abs() < 0.05,
            "member {i} scores {s}, the lone daemon {reference}:\n{log}"
        );
    }
    assert_eq!(recoveries, 1, "one recovery for the group:\n{log}");
    for d in running {
        assert_eq!(d.terminate(Duration::from_secs(30)), 0);
    }
}
