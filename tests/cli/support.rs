//! Running the binary, and the small data sets the tests share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gmm_io::ModelFile;
use gmm_model::GaussianMixture;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// What a run of the binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// Asserts success and returns self, showing stderr when it failed.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self
    }

    /// Asserts exit code 2 and that the error is one line that names `what`.
    pub fn bad_input(self, what: &[&str]) -> Self {
        assert_eq!(self.code, 2, "stderr: {}", self.stderr);
        self.one_line_error(what)
    }

    fn one_line_error(self, what: &[&str]) -> Self {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one sentence, got: {}", self.stderr);
        assert!(lines[0].starts_with("gmm-stream: "), "{}", self.stderr);
        for w in what {
            assert!(self.stderr.contains(w), "{w:?} not in: {}", self.stderr);
        }
        self
    }
}

pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gmm-stream"));
    cmd.env_remove("RUST_LOG");
    cmd
}

pub fn run(args: &[&str]) -> Run {
    run_with_stdin(args, &[])
}

pub fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    // The binary may stop reading early (an error); a closed pipe is not a failure here.
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().expect("the binary runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A path as the argument the binary takes.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

pub fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference/cli_data")
        .join(name)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

pub fn load(path: &Path) -> (ModelFile, GaussianMixture) {
    let bytes = std::fs::read(path).expect("the model file exists");
    let file = ModelFile::from_bytes(&bytes).expect("a valid model file");
    let mixture = file.mixture().expect("a valid mixture");
    (file, mixture)
}

/// 200 2-d points, row-major, from two well separated clusters (seeded).
pub fn two_clusters() -> Vec<[f64; 2]> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    (0..200)
        .map(|i| {
            let (cx, cy, s) = if i % 2 == 0 {
                (0.0, 0.0, 1.0)
            } else {
                (8.0, 5.0, 0.5)
            };
            [cx + s * normal(), cy + s * (normal() + 0.3 * normal())]
        })
        .collect()
}

/// Shortest round-trip decimal form of every coordinate.
pub fn csv_text(points: &[[f64; 2]], header: bool) -> String {
    let mut s = if header {
        "x,y\n".to_owned()
    } else {
        String::new()
    };
    for p in points {
        s.push_str(&format!("{:?},{:?}\n", p[0], p[1]));
    }
    s
}

pub fn json_lines(points: &[[f64; 2]]) -> String {
    points
        .iter()
        .map(|p| format!("[{:?},{:?}]\n", p[0], p[1]))
        .collect()
}

pub fn f64le(points: &[[f64; 2]]) -> Vec<u8> {
    points
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

pub fn f32le(points: &[[f64; 2]]) -> Vec<u8> {
    points
        .iter()
        .flatten()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect()
}

pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write a test file");
    path
}

/// Largest `|a − b| / |b|` over pairs, for reporting agreement.
pub fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// Parses NDJSON score records.
pub fn records(stdout: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record per line"))
        .collect()
}

pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

pub const COVARIANCE_TYPES: [&str; 4] = ["full", "diag", "spherical", "tied"];
