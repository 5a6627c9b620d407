//! The daemon's HTTP API, end to end: a daemon runs in-process on the generator and
//! every endpoint is called over real HTTP, with good, bad and oversized requests.
//! One daemon per test binary: the metrics recorder is process-wide.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use gmm_io::ModelFile;
use gmm_stream::config::Config;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "s3cret-token";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Daemon {
    base: String,
    cancel: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start() -> Daemon {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let sets = [
        format!("http.listen=127.0.0.1:{port}"),
        format!("http.token={TOKEN}"),
        "http.max_body_bytes=65536".into(),
        format!("snapshot.dir={}", dir.path().join("snapshots").display()),
        // Slow enough that the warm-up can be seen, fast enough for a short test.
        "source.generator.rate=4000".into(),
        "source.generator.dim=3".into(),
        "estimator.warmup_points=2000".into(),
        "estimator.batch_size=500".into(),
        "log.status_every_seconds=0".into(),
    ];
    let config = Config::load_from(None, &[], &sets).expect("config");
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime
            .block_on(gmm_stream::daemon::run_until(config, token))
            .expect("the daemon runs");
    });
    let base = format!("http://127.0.0.1:{port}");
    wait_for(
        || get(&format!("{base}/healthz"), None).0 == 200,
        "the server to listen",
    );
    Daemon {
        base,
        cancel,
        thread: Some(thread),
        _dir: dir,
    }
}

fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_and_body(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    status_and_body(req.call())
}

fn post(url: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut req = ureq::post(url)
        .timeout(Duration::from_secs(10))
        .set("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    status_and_body(req.send_bytes(body))
}

/// Declares a body over the limit and sends only its start: the server must
/// refuse it from the declared length (a client writing it all would only see the
/// connection closed under it).
fn oversized_post(base: &str, length: usize) -> u16 {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST /score HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n[[1.0,2.0,3.0]"
    );
    stream.write_all(head.as_bytes()).expect("send");
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).expect("an answer");
    let line = String::from_utf8_lossy(&answer[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line}"))
}

fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{page}"))
}

#[test]
fn every_endpoint_answers_good_and_bad_requests() {
    let daemon = start();
    let url = |path: &str| format!("{}{path}", daemon.base);

    // Liveness at once; readiness only once the warm-up has built a model.
    assert_eq!(get(&url("/healthz"), None).0, 200);
    let (code, body) = get(&url("/readyz"), None);
    if code == 503 {
        assert!(body.contains("warming up"), "{body}");
        assert_eq!(post(&url("/score"), Some(TOKEN), b"[[0,0,0]]").0, 503);
    }
    wait_for(|| get(&url("/readyz"), None).0 == 200, "readiness");

    // Metrics: the point counter grows, and every family is there.
    let (code, first) = get(&url("/metrics"), None);
    assert_eq!(code, 200);
    let before = metric(&first, "gmm_points_absorbed_total");
    std::thread::sleep(Duration::from_millis(600));
    let (_, second) = get(&url("/metrics"), None);
    assert!(
        metric(&second, "gmm_points_absorbed_total") > before,
        "the point counter did not grow"
    );
    for family in [
        "gmm_rejects_total{reason=\"dimension\"}",
        "gmm_batches_total",
        "gmm_model_version",
        "gmm_mean_log_likelihood",
        "gmm_anomaly_rate",
        "gmm_snapshot_age_seconds",
        "gmm_em_step_seconds_bucket",
        "gmm_ready",
    ] {
        assert!(
            second.contains(family),
            "no {family} in the metrics:\n{second}"
        );
    }
    assert_eq!(metric(&second, "gmm_ready"), 1.0);

    // The model needs the token, and is a whole model file.
    assert_eq!(get(&url("/model"), None).0, 401);
    assert_eq!(get(&url("/model"), Some("wrong")).0, 401);
    let (code, body) = get(&url("/model"), Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let model = ModelFile::from_bytes(body.as_bytes()).expect("a valid model");
    assert_eq!((model.n_features, model.n_components), (3, 3));
    assert!(
        model.state.is_none(),
        "the served model should not carry the estimator state"
    );

    // Scoring: one record per point, as `docs/reference.md`, "Scores", has them.
    let (code, body) = post(
        &url("/score"),
        Some(TOKEN),
        b"[[0.5, -1, 2], [100, 100, 100]]",
    );
    assert_eq!(code, 200, "{body}");
    let records: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let records = records.as_array().expect("an array");
    assert_eq!(records.len(), 2);
    for r in records {
        for key in [
            "log_density",
            "cluster",
            "responsibilities",
            "anomaly",
            "threshold",
            "model_version",
        ] {
            assert!(r.get(key).is_some(), "no {key} in {r}");
        }
    }
    let far = records[1]["log_density"].as_f64().expect("a number");
    let near = records[0]["log_density"].as_f64().expect("a number");
    assert!(far < near, "a far point should be less likely");
    assert_eq!(
        post(&url("/score"), Some(TOKEN), b"[]"),
        (200, "[]\n".to_string())
    );

    // Bad requests: 401, 400 with a message, 413; never a 500.
    assert_eq!(post(&url("/score"), None, b"[[1,2,3]]").0, 401);
    for (body, says) in [
        (&b"not json"[..], "JSON array"),
        (b"{\"points\": [[1,2,3]]}", "JSON array"),
        (b"[1, 2, 3]", "JSON array"),
        (b"[[1, 2]]", "point 0 has 2 coordinates"),
        (b"[[1, 2, 3], [1, 2, 3, 4]]", "point 1 has 4 coordinates"),
        (b"[[1e999, 0, 0]]", "JSON array"),
        (b"[[1, \"two\", 3]]", "JSON array"),
    ] {
        let (code, text) = post(&url("/score"), Some(TOKEN), body);
        assert_eq!(
            code,
            400,
            "{} gave {code}: {text}",
            String::from_utf8_lossy(body)
        );
        assert!(
            text.contains(says),
            "{} gave {text}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(oversized_post(&daemon.base, 200_000), 413);
    assert_eq!(get(&url("/nope"), None).0, 404);
}
