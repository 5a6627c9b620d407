//! The HTTP server against careless and hostile clients (issue "Hostile input and
//! hostile clients"): half-sent headers, idle connections beyond the cap, bodies
//! that never finish, too many points, and a shutdown while all that is going on.
//! One daemon, in-process, with small limits; every wait is bounded generously:
//! these check what happens, not how fast.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use gmm_stream::config::Config;
use tokio_util::sync::CancellationToken;

const HEADER_TIMEOUT_MS: u64 = 1500;
const MAX_CONNECTIONS: usize = 4;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
}

/// Reads until the server closes the connection (or sends something); returns what
/// it sent and how long it took.
fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

fn status(r: Result<ureq::Response, ureq::Error>) -> u16 {
    match r {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("no answer: {e}"),
    }
}

fn points(n: usize) -> String {
    format!("[{}]", vec!["[0.5, -1, 2]"; n].join(","))
}

#[test]
fn hostile_clients_neither_hold_the_server_nor_delay_shutdown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let sets = [
        format!("http.listen={addr}"),
        format!("http.max_connections={MAX_CONNECTIONS}"),
        format!("http.header_timeout_ms={HEADER_TIMEOUT_MS}"),
        "http.request_timeout_ms=2000".into(),
        "http.shutdown_timeout_ms=1000".into(),
        "http.max_score_points=1000".into(),
        "http.max_concurrent_scores=1".into(),
        format!("snapshot.dir={}", dir.path().join("snapshots").display()),
        "source.generator.rate=5000".into(),
        "source.generator.dim=3".into(),
        "estimator.warmup_points=500".into(),
        "estimator.batch_size=250".into(),
        "log.status_every_seconds=0".into(),
    ];
    let config = Config::load_from(None, &[], &sets).expect("config");
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let daemon = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(gmm_stream::daemon::run_until(config, token))
    });
    let ready = || status(ureq::get(&format!("{base}/readyz")).call()) == 200;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(std::panic::catch_unwind(ready), Ok(true)) {
        assert!(Instant::now() < deadline, "the daemon never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Half-sent headers: the connection is closed after the header timeout.
    let mut half = connect(&addr);
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("send");
    let (_, took) = until_closed(&mut half);
    assert!(took < Duration::from_secs(10), "held for {took:?}");

    // Idle connections up to the cap; one more is closed at once, well before
    // the idle ones time out; once they have, the server answers again.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| connect(&addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = connect(&addr);
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (answer, took) = until_closed(&mut extra);
    assert!(answer.is_empty(), "served beyond the cap: {answer}");
    assert!(
        took < Duration::from_millis(HEADER_TIMEOUT_MS),
        "the extra connection waited {took:?}"
    );
    for mut stream in idle {
        let (_, took) = until_closed(&mut stream);
        assert!(
            took < Duration::from_secs(10),
            "an idle connection held {took:?}"
        );
    }
    assert_eq!(status(ureq::get(&format!("{base}/healthz")).call()), 200);

    // Points per request: the cap is inclusive; one more is 413.
    let post = |body: &str| {
        status(
            ureq::post(&format!("{base}/score"))
                .timeout(Duration::from_secs(20))
                .send_string(body),
        )
    };
    assert_eq!(post(&points(1000)), 200);
    assert_eq!(post(&points(1001)), 413);

    // A body that never finishes holds its turn only until the request timeout
    // (408); the request waiting behind it is then served.
    let mut slow = connect(&addr);
    slow.write_all(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n[[1,2,3],")
        .expect("send");
    std::thread::sleep(Duration::from_millis(200));
    let waiting = {
        let url = format!("{base}/score");
        std::thread::spawn(move || {
            status(
                ureq::post(&url)
                    .timeout(Duration::from_secs(20))
                    .send_string("[[1, 2, 3]]"),
            )
        })
    };
    let (answer, _) = until_closed(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let served = waiting.join().expect("no panic");
    assert!(served == 200 || served == 503, "{served}");

    // Shutdown while clients hold connections in every state: bounded.
    let mut stuck = connect(&addr);
    stuck
        .write_all(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[")
        .expect("send");
    let mut half = connect(&addr);
    half.write_all(b"GET /model HTTP/1.1\r\n").expect("send");
    let _idle = connect(&addr);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    cancel.cancel();
    daemon
        .join()
        .expect("no panic")
        .expect("the daemon stops cleanly");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    println!("shutdown with three hostile clients connected: {took:?}");
}
