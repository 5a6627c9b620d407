//! Every decoder fed random bytes, truncations and crafted lengths: points in each
//! format, model files, snapshots (binary and JSON), and the configuration. None
//! may panic, and none may make the heap grow beyond a small multiple of its input:
//! dhat's counting allocator measures the peak of the heap during each call.
//!
//! One test function runs every property in turn: the heap counts are global, so
//! nothing else may run in this process meanwhile.

use std::io::Write;
use std::path::Path;

use gmm_io::{read_all, read_model, DecodeConfig, Encoding, EstimatorInfo, Format, ModelFile};
use gmm_model::{points_from_rows, OnlineEm, OnlineSettings};
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, TestCaseError, TestRunner};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Peak heap growth allowed: this many bytes per input byte...
const PER_BYTE: usize = 16;
/// ...plus this much whatever the input (buffers of fixed size, parser tables).
const FIXED: usize = 1 << 20;

/// Runs `f` and returns the peak number of heap bytes live during it (beyond what
/// was live before).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let profiler = dhat::Profiler::builder().testing().build();
    let out = f();
    let peak = dhat::HeapStats::get().max_bytes;
    drop(profiler);
    (out, peak)
}

/// Fails the case when decoding `input` with `f` grew the heap beyond the bound.
fn bounded<T>(what: &str, input: &[u8], f: impl FnOnce() -> T) -> Result<usize, TestCaseError> {
    let (_, peak) = peak_of(f);
    let limit = PER_BYTE * input.len() + FIXED;
    prop_assert!(
        peak <= limit,
        "{what}: {} input bytes made the heap grow by {peak} bytes (limit {limit})",
        input.len()
    );
    Ok(peak)
}

/// Keeps the largest heap growth per input byte, over inputs large enough for the
/// fixed part not to dominate.
fn note(worst: &std::cell::Cell<usize>, peak: usize, len: usize) {
    if len >= 512 {
        worst.set(worst.get().max(peak / len));
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Cases {
        cases,
        failure_persistence: None,
        ..Cases::default()
    })
}

/// A binary model file around `payload`, with a valid length and checksum, so that
/// the decoder itself meets whatever the payload says.
fn binary_around(payload: &[u8]) -> Vec<u8> {
    let mut out = b"GMM-STREAM-MODEL".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A real snapshot: an online estimator past its warm-up, with its whole state.
fn snapshot() -> ModelFile {
    let settings = OnlineSettings {
        warmup_points: 60,
        ..OnlineSettings::new(2)
    };
    let mut est = OnlineEm::new(settings.clone()).expect("settings");
    let points: Vec<f64> = (0..100)
        .flat_map(|i| {
            let c = (i % 2) as f64 * 5.0;
            [c + (i % 7) as f64 * 0.1, (i % 5) as f64 * 0.2]
        })
        .collect();
    est.partial_fit(points_from_rows(&points, 2).expect("points"), 1.0)
        .expect("warm-up");
    let model = est.model().expect("a model").clone();
    let mut file = ModelFile::new(
        &model,
        EstimatorInfo::Online(settings),
        "2026-01-01T00:00:00Z".into(),
    );
    file.state = Some(est.state().clone());
    file.positions = Some(gmm_io::Positions::file(Path::new("points.csv"), 1234));
    file
}

/// Bincode's variable-length integer prefixes: a length field of any size.
fn crafted_length() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u8..251).prop_map(|b| vec![b]),
        any::<u16>().prop_map(|v| [&[251u8][..], &v.to_le_bytes()].concat()),
        any::<u32>().prop_map(|v| [&[252u8][..], &v.to_le_bytes()].concat()),
        any::<u64>().prop_map(|v| [&[253u8][..], &v.to_le_bytes()].concat()),
    ]
}

/// A payload mutated: bytes flipped, a crafted length spliced in, or cut short.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    (
        prop::collection::vec((0..len, any::<u8>()), 0..4),
        prop::option::of((0..=len, crafted_length())),
        prop::option::of(0..=len),
    )
        .prop_map(move |(flips, splice, cut)| {
            let mut bytes = base.clone();
            for (at, b) in flips {
                bytes[at] ^= b;
            }
            if let Some((at, length)) = splice {
                bytes.splice(at..at, length);
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            bytes
        })
}

fn decode_points(config: &DecodeConfig, input: &[u8]) {
    let _ = read_all(input, config.clone(), true, "input");
}

fn load_config(dir: &Path, text: &[u8]) {
    let path = dir.join("config.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text))
        .expect("write the config");
    let _ = gmm_stream::config::Config::load_from(Some(&path), &[], &[]);
}

#[test]
fn every_decoder_is_bounded_by_its_input_and_never_panics() {
    let mut report = Vec::new();

    // Points, in each format, as whole streams (framing and decoding).
    let formats = [
        DecodeConfig::new(Format::Csv),
        DecodeConfig::new(Format::Json),
        DecodeConfig {
            dim: Some(2),
            ..DecodeConfig::new(Format::F64le)
        },
        DecodeConfig {
            dim: Some(3),
            ..DecodeConfig::new(Format::F32le)
        },
    ];
    let text_like = prop::collection::vec(
        prop::sample::select(b"0123456789.,-+eE[]{}\":naif \n\r\tx".to_vec()),
        0..2000,
    );
    for config in &formats {
        let worst = std::cell::Cell::new(0);
        let bytes = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2000),
            text_like.clone()
        ];
        runner(500)
            .run(&bytes, |input| {
                let peak = bounded(config.format.as_str(), &input, || {
                    decode_points(config, &input)
                })?;
                note(&worst, peak, input.len());
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", config.format));
        report.push(format!(
            "{}: at most {} heap bytes per input byte",
            config.format,
            worst.get()
        ));
    }
    // Deep JSON nesting and long numbers.
    let json = DecodeConfig::new(Format::Json);
    for input in [
        "[".repeat(100_000).into_bytes(),
        format!("[{}]", "1e999999,".repeat(10_000)).into_bytes(),
        format!("[{}1]", "9".repeat(100_000)).into_bytes(),
    ] {
        bounded("json, crafted", &input, || decode_points(&json, &input)).expect("bounded");
    }

    // Model files and snapshots: read (bounded reader), then decoded.
    let file = snapshot();
    let binary = file.encode_checked(Encoding::Binary).expect("binary");
    let payload = binary[28..binary.len() - 4].to_vec();
    let json = file.encode_checked(Encoding::Json).expect("json");
    let worst = std::cell::Cell::new(0);
    runner(3000)
        .run(&mutated(payload), |payload| {
            let input = binary_around(&payload);
            let peak = bounded("binary snapshot", &input, || {
                ModelFile::from_bytes(&input).map(|f| restore_and_step(&f))
            })?;
            note(&worst, peak, input.len());
            Ok(())
        })
        .expect("binary snapshots");
    report.push(format!(
        "binary snapshots: at most {} heap bytes per input byte",
        worst.get()
    ));
    let worst = std::cell::Cell::new(0);
    runner(300)
        .run(&mutated(json), |input| {
            let peak = bounded("json snapshot", &input, || {
                ModelFile::from_bytes(&input).map(|f| restore_and_step(&f))
            })?;
            note(&worst, peak, input.len());
            Ok(())
        })
        .expect("json snapshots");
    report.push(format!(
        "json snapshots: at most {} heap bytes per input byte",
        worst.get()
    ));
    runner(200)
        .run(&prop::collection::vec(any::<u8>(), 0..4000), |input| {
            bounded("model bytes", &input, || {
                read_model(&input[..]).map(|bytes| ModelFile::from_bytes(&bytes))
            })?;
            let wrapped = binary_around(&input);
            bounded("model payload", &wrapped, || {
                ModelFile::from_bytes(&wrapped)
            })?;
            Ok(())
        })
        .expect("random model files");

    // The configuration file: random bytes and mutations of the shipped defaults.
    let dir = tempfile::tempdir().expect("temp dir");
    let defaults = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"))
        .expect("default.toml");
    let configs = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2000),
        mutated(defaults)
    ];
    runner(150)
        .run(&configs, |input| {
            bounded("config", &input, || load_config(dir.path(), &input))?;
            Ok(())
        })
        .expect("configs");

    println!("{}", report.join("\n"));
}

/// What the daemon does with a snapshot that decodes: restore it, and absorb a
/// batch. A state that decodes but does not hold together must be refused, not
/// panic.
fn restore_and_step(file: &ModelFile) {
    let (Ok(model), Some(state), EstimatorInfo::Online(settings)) =
        (file.mixture(), file.state.clone(), &file.estimator)
    else {
        return;
    };
    let Ok(mut est) = OnlineEm::restore(settings.clone(), state, Some(model)) else {
        return;
    };
    let d = file.n_features as usize;
    let points = vec![0.5; d * 4];
    if let Ok(x) = points_from_rows(&points, d) {
        let _ = est.partial_fit(x, 1.0);
    }
}
