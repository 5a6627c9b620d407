//! What the `daemon_*` tests share: synthetic streams written to files with their
//! ground truth, a TOML configuration for a file-fed daemon, running it (the real
//! binary, or in-process with `run_until`), and reading back what it wrote.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gmm_io::{ModelFile, Positions};
use gmm_model::{fit, points_from_rows, EmSettings, GaussianMixture, InitMethod, Start};
use gmm_stream::config::{Config, GeneratorConfig};
use gmm_stream::sink::SnapshotStore;
use gmm_stream::source::Generator;
use tokio_util::sync::CancellationToken;

/// A generated stream: its generator (for ground truth) and its first `n` points.
pub struct Stream {
    pub generator: Generator,
    pub dim: usize,
    /// Row-major, `n * dim` values.
    pub points: Vec<f64>,
}

impl Stream {
    pub fn new(config: GeneratorConfig, n: usize) -> Self {
        let dim = config.dim;
        let mut generator = Generator::new(&config, dim).expect("a valid generator");
        let mut points = Vec::with_capacity(n * dim);
        assert_eq!(generator.next_points(n, &mut points), n, "generator limit");
        Self {
            generator,
            dim,
            points,
        }
    }

    pub fn len(&self) -> usize {
        self.points.len() / self.dim
    }

    /// Points `range` (by index), row-major.
    pub fn rows(&self, range: std::ops::Range<usize>) -> &[f64] {
        &self.points[range.start * self.dim..range.end * self.dim]
    }
}

/// A point as a csv line (no newline). `{}` prints an f64 in its shortest form
/// that parses back to the same bits, so the daemon reads exactly these values.
pub fn csv_line(point: &[f64]) -> String {
    point
        .iter()
        .map(|v| format!("{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Row-major points as csv lines.
pub fn write_csv(path: &Path, rows: &[f64], dim: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create csv"));
    for p in rows.chunks(dim) {
        writeln!(out, "{}", csv_line(p)).expect("write csv");
    }
    out.flush().expect("flush csv");
}

/// Row-major points as raw little-endian f64.
pub fn write_f64le(path: &Path, rows: &[f64]) {
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write f64le");
}

/// Points drawn from `model` (d×n, column-major, which is row-major per point).
pub fn sample(model: &GaussianMixture, n: usize, seed: u64) -> Vec<f64> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (x, _) = model.sample(n, &mut rng);
    x.as_slice().to_vec()
}

/// Mean log-likelihood per point of row-major `points` under `model`.
pub fn mean_ll(model: &GaussianMixture, points: &[f64], dim: usize) -> f64 {
    let x = points_from_rows(points, dim).expect("whole points");
    model.score(x).expect("scores")
}

/// Batch EM (scikit-learn semantics) run to a tight tolerance from a few k-means
/// starts: the reference an online estimator is measured against.
pub fn batch_fit(points: &[f64], dim: usize, components: usize) -> GaussianMixture {
    let x = points_from_rows(points, dim).expect("whole points");
    let settings = EmSettings {
        max_iter: 500,
        tol: 1e-7,
        n_init: 3,
        start: Start::Init(InitMethod::KMeans),
        seed: 1,
        ..EmSettings::new(components)
    };
    fit(x, &settings, &mut |_| {}).expect("batch EM").model
}

/// A working directory with the daemon's files in it.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn snapshots(&self) -> PathBuf {
        self.path("snapshots")
    }

    /// Writes `toml` as `name` and returns its path.
    pub fn config_file(&self, name: &str, toml: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, toml).expect("write config");
        path
    }
}

/// TOML for a daemon reading `input` (`format`), with snapshots in `snapshots`,
/// no HTTP server and no status lines; `extra` is appended (later keys of the
/// same section must then be given with `--set` instead, TOML refuses a section
/// twice, so `extra` holds whole sections the base does not have).
///
/// Batches are cut by size only: the timeout is an hour, so that a loaded machine
/// never closes a batch early and the batch sequence is the same on every run.
pub fn file_config(input: &Path, format: &str, snapshots: &Path, extra: &str) -> String {
    format!(
        r#"
[source]
kind = "file"
path = {input:?}
format = "{format}"

[estimator]
batch_timeout_ms = 3600000

[snapshot]
dir = {snapshots:?}
every_seconds = 0.0
keep = 1000

[http]
listen = ""

[log]
format = "json"
status_every_seconds = 0.0
{extra}
"#
    )
}

/// Loads a configuration the way `run` does, without the process environment.
pub fn load_config(path: &Path, sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load_from(Some(path), &[], &sets).expect("a valid configuration")
}

/// Runs the pipeline in-process until the finite source ends.
pub fn run_in_process(config: Config) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(gmm_stream::daemon::run_until(
            config,
            CancellationToken::new(),
        ))
        .expect("the daemon runs to the end of its input");
}

pub fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gmm-stream"));
    cmd.env_remove("RUST_LOG");
    // Only --config and --set configure the runs under test.
    for (key, _) in std::env::vars() {
        if key.starts_with("GMM_STREAM__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// `gmm-stream run --config config --set ...` to completion.
pub fn run_binary(config: &Path, sets: &[&str]) -> Output {
    run_command(config, sets)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

pub fn run_command(config: &Path, sets: &[&str]) -> Command {
    let mut cmd = binary();
    cmd.arg("run").arg("--config").arg(config);
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd
}

/// Spawns `run` with its stderr going to `log` (appended).
pub fn spawn_binary(config: &Path, sets: &[&str], log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the log");
    run_command(config, sets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the binary starts")
}

pub fn store(dir: &Path) -> SnapshotStore {
    SnapshotStore::new(dir, 1000, gmm_io::Encoding::Json)
}

/// Every snapshot in `dir`, oldest first.
pub fn all_snapshots(dir: &Path) -> Vec<ModelFile> {
    store(dir)
        .snapshots()
        .expect("list snapshots")
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).expect("read snapshot");
            ModelFile::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// The newest snapshot, which must load without skipping a newer one.
pub fn newest_snapshot(dir: &Path) -> ModelFile {
    let outcome = store(dir).load_newest().expect("load");
    assert!(
        outcome.skipped.is_empty(),
        "unreadable snapshots: {:?}",
        outcome.skipped
    );
    outcome.newest.expect("a snapshot").1
}

/// `points_seen` of the newest snapshot, read from its name (cheap, for polling).
pub fn newest_points(dir: &Path) -> Option<u64> {
    let newest = store(dir).snapshots().ok()?.last().cloned()?;
    newest.file_name()?.to_str()?.get(9..29)?.parse().ok()
}

/// The byte offset a snapshot says the next unread point is at.
pub fn file_offset(snapshot: &ModelFile) -> u64 {
    match &snapshot.positions {
        Some(Positions::File { offset, .. }) => *offset,
        other => panic!("not a file position: {other:?}"),
    }
}

/// Waits up to a minute for `child` to exit, polling; None if it did not.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// JSON log lines of a run's stderr (other lines are ignored).
pub fn json_logs(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The model's parameters as bits, for exact comparisons.
pub fn parameter_bits(file: &ModelFile) -> Vec<u64> {
    let m = file.mixture().expect("a valid mixture");
    let mut bits: Vec<u64> = m.weights().iter().map(|v| v.to_bits()).collect();
    bits.extend(m.means().iter().map(|v| v.to_bits()));
    let d = m.n_features();
    for k in 0..m.n_components() {
        bits.extend(
            m.covariances()
                .component_matrix(k, d)
                .iter()
                .map(|v| v.to_bits()),
        );
    }
    bits
}
