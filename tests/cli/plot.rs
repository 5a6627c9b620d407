//! `gmm-stream plot`: the SVG parses, holds one dot per point, two ellipses and a
//! mean marker per component (d ≥ 2), a curve per component plus the mixture and a
//! histogram (d = 1), a line per component over real daemon snapshots; the ellipses
//! enclose the share of their points a Gaussian puts within 1 and 2 σ; bad inputs
//! exit 2.
//!
//! The drawing primitives are plotters' SVG elements: points and snapshot markers
//! are `<circle>`, ellipses and curves `<polyline>` (axes and ticks are two-vertex
//! polylines), means filled `<polygon>` diamonds, bars and legend swatches `<rect>`.

use std::path::{Path, PathBuf};

use gmm_io::ModelFile;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::support::*;

/// A polyline with more vertices than this is a curve (an ellipse, a density), not
/// an axis or a tick.
const CURVE_MIN_VERTICES: usize = 32;
/// The plot's colours for components 0 and 1 (Tableau 10), its ink and its
/// histogram grey, as the SVG spells them.
const COLOURS: [&str; 2] = ["#1F77B4", "#FF7F0E"];
const INK: &str = "#222222";
const HISTOGRAM: &str = "#D4D4D4";

/// The parts of a picture the tests look at.
struct Svg {
    /// Centres of `<circle>`s, with their fill.
    circles: Vec<((f64, f64), String)>,
    /// Vertices of curve `<polyline>`s, in drawing order.
    curves: Vec<Vec<(f64, f64)>>,
    polygons: usize,
    /// Fill of every `<rect>`.
    rects: Vec<String>,
    text: String,
}

fn parse_svg(bytes: &[u8]) -> Svg {
    let source = std::str::from_utf8(bytes).expect("UTF-8 SVG");
    let doc = roxmltree::Document::parse(source).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let num = |n: &roxmltree::Node, a: &str| -> f64 {
        n.attribute(a).expect(a).parse().expect("a number")
    };
    let mut svg = Svg {
        circles: Vec::new(),
        curves: Vec::new(),
        polygons: 0,
        rects: Vec::new(),
        text: String::new(),
    };
    for node in root.descendants().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "circle" => svg.circles.push((
                (num(&node, "cx"), num(&node, "cy")),
                node.attribute("fill").unwrap_or_default().to_owned(),
            )),
            "polyline" => {
                let points = vertices(node.attribute("points").expect("points"));
                if points.len() > CURVE_MIN_VERTICES {
                    svg.curves.push(points);
                }
            }
            "polygon" => svg.polygons += 1,
            "rect" => svg
                .rects
                .push(node.attribute("fill").unwrap_or_default().to_owned()),
            "text" => {
                svg.text.push_str(node.text().unwrap_or_default());
                svg.text.push('\n');
            }
            _ => {}
        }
    }
    svg
}

fn vertices(points: &str) -> Vec<(f64, f64)> {
    points
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').expect("x,y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect()
}

impl Svg {
    fn has(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }

    fn circles_filled(&self, fill: &str) -> usize {
        self.circles.iter().filter(|(_, f)| f == fill).count()
    }

    /// Circles inside a closed curve (even-odd rule).
    fn circles_inside(&self, curve: &[(f64, f64)]) -> usize {
        self.circles
            .iter()
            .filter(|(c, _)| inside(*c, curve))
            .count()
    }
}

fn inside((x, y): (f64, f64), polygon: &[(f64, f64)]) -> bool {
    let mut inside = false;
    for w in polygon.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if (y0 > y) != (y1 > y) && x < x0 + (y - y0) * (x1 - x0) / (y1 - y0) {
            inside = !inside;
        }
    }
    inside
}

fn plot(args: &[&str]) -> Svg {
    let r = run(&[&["plot"], args, &["-o", "-"]].concat()).ok();
    parse_svg(&r.stdout)
}

fn fit(dir: &Path, data: &Path, k: usize, name: &str) -> PathBuf {
    let out = dir.join(name);
    let k = k.to_string();
    run(&["fit", "-q", "-i", arg(data), "-k", &k, "-o", arg(&out)]).ok();
    out
}

/// `n` points per component around well separated means, d coordinates each.
fn blobs(means: &[Vec<f64>], n: usize, seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut text = String::new();
    for i in 0..n * means.len() {
        let mean = &means[i % means.len()];
        let row: Vec<String> = mean
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let z: f64 = StandardNormal.sample(&mut rng);
                // Unequal spreads, so that the ellipses are not circles.
                format!("{:?}", m + z * (0.5 + 0.3 * j as f64))
            })
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    text
}

/// Each component's 1σ and 2σ ellipses (drawn 2σ first) enclose about the shares a
/// Gaussian in the plane puts there, 1 − e^(−r²/2): 39 % and 86 %. Clusters are far
/// apart, so the points inside an ellipse are its component's.
fn check_ellipses_fit_their_points(svg: &Svg, model: &Path) {
    let (_, mixture) = load(model);
    let n = svg.circles.len() as f64;
    for (k, pair) in svg.curves.chunks(2).enumerate() {
        let n_k = mixture.weights()[k] * n;
        let share = |curve: &[(f64, f64)]| svg.circles_inside(curve) as f64 / n_k;
        let (two, one) = (share(&pair[0]), share(&pair[1]));
        assert!((one - 0.393).abs() < 0.12, "component {k}: {one} within 1σ");
        assert!((two - 0.865).abs() < 0.08, "component {k}: {two} within 2σ");
    }
}

#[test]
fn a_two_dimensional_model_with_its_data() {
    let dir = tempdir();
    let data = write(dir.path(), "p.csv", csv_text(&two_clusters(), false));
    let model = fit(dir.path(), &data, 2, "m.json");
    let svg = plot(&["--model", arg(&model), "--data", arg(&data)]);
    assert_eq!(svg.circles.len(), 200, "a dot per point");
    assert_eq!(svg.curves.len(), 4, "two ellipses per component");
    assert_eq!(svg.polygons, 2, "a mean per component");
    for c in COLOURS {
        assert!(svg.circles_filled(c) > 80, "points coloured by component");
    }
    check_ellipses_fit_their_points(&svg, &model);
    // Any input format and model form: the same points as raw floats, the model as
    // binary, draw the same picture.
    let raw = write(dir.path(), "p.f64", f64le(&two_clusters()));
    let bin = dir.path().join("m.bin");
    let json = std::fs::read(&model).expect("the model");
    let file = ModelFile::from_bytes(&json).expect("a model");
    std::fs::write(&bin, file.to_binary().expect("binary")).expect("write");
    let args = [
        "plot",
        "-m",
        arg(&bin),
        "--data",
        arg(&raw),
        "--format",
        "f64le",
    ];
    let again = run(&[&args[..], &["-o", "-"]].concat()).ok();
    let first = run(&["plot", "-m", arg(&model), "--data", arg(&data), "-o", "-"]).ok();
    let named = |svg: &[u8]| {
        String::from_utf8_lossy(svg)
            .replace("m.bin", "m.json")
            .replace("p.f64", "p.csv")
    };
    assert!(
        named(&again.stdout) == named(&first.stdout),
        "the same picture"
    );
    for needle in [
        "K = 2, d = 2".to_owned(),
        "full covariances".to_owned(),
        format!("points seen {}", file.points_seen),
        format!("model version {}", file.model_version),
        "x1".to_owned(),
        "first two coordinates".to_owned(),
    ] {
        assert!(svg.has(&needle), "{needle:?} not in:\n{}", svg.text);
    }
}

#[test]
fn five_dimensions_are_drawn_on_the_principal_plane() {
    let dir = tempdir();
    let means = [
        vec![0.0, 0.0, 0.0, 0.0, 0.0],
        vec![12.0, -3.0, 4.0, 0.0, 6.0],
        vec![-6.0, 9.0, 0.0, 8.0, -4.0],
    ];
    let data = write(dir.path(), "p5.csv", blobs(&means, 150, 5));
    let model = fit(dir.path(), &data, 3, "m5.bin");
    let svg = plot(&["-m", arg(&model), "--data", arg(&data)]);
    assert_eq!(svg.circles.len(), 450);
    assert_eq!(svg.curves.len(), 6);
    assert_eq!(svg.polygons, 3);
    assert!(svg.has("K = 3, d = 5"), "{}", svg.text);
    assert!(svg.has("PC1 (") && svg.has("PC2 ("), "{}", svg.text);
    assert!(svg.has("principal components of"), "{}", svg.text);
    check_ellipses_fit_their_points(&svg, &model);

    // Without data, the plane comes from the model; first2 is available too.
    let alone = plot(&["-m", arg(&model)]);
    assert_eq!(
        (alone.circles.len(), alone.curves.len(), alone.polygons),
        (0, 6, 3)
    );
    assert!(alone.has("the mixture"), "{}", alone.text);
    let first2 = plot(&["-m", arg(&model), "--projection", "first2"]);
    assert_eq!(first2.curves.len(), 6);
    assert!(first2.has("first two coordinates"), "{}", first2.text);
}

#[test]
fn one_dimension_is_a_density_over_a_histogram() {
    let dir = tempdir();
    let data = write(
        dir.path(),
        "p1.csv",
        blobs(&[vec![-3.0], vec![4.0]], 150, 1),
    );
    let model = fit(dir.path(), &data, 2, "m1.json");
    let svg = plot(&["--model", arg(&model), "--data", arg(&data)]);
    assert_eq!(svg.curves.len(), 3, "the mixture and each component");
    assert_eq!((svg.circles.len(), svg.polygons), (0, 0));
    // ceil(sqrt(300)) = 18 bars, and the legend's swatch.
    let grey = svg.rects.iter().filter(|f| *f == HISTOGRAM).count();
    assert_eq!(grey, 18 + 1);
    assert!(
        svg.has("density") && svg.has("K = 2, d = 1"),
        "{}",
        svg.text
    );
    // The mixture's curve is the components' sum: it lies on or above each (SVG y
    // grows downwards).
    let (mixture, components) = (&svg.curves[0], &svg.curves[1..]);
    for c in components {
        assert_eq!(c.len(), mixture.len());
        assert!(c.iter().zip(mixture).all(|(a, m)| m.1 <= a.1 + 1.0));
    }
}

#[test]
fn large_inputs_are_sampled_the_same_way_every_time() {
    let dir = tempdir();
    let data = write(dir.path(), "p.csv", csv_text(&two_clusters(), true));
    let model = fit(dir.path(), &data, 2, "m.json");
    let args = [
        "plot",
        "-m",
        arg(&model),
        "--data",
        arg(&data),
        "--max-points",
        "50",
    ];
    let a = run(&[&args[..], &["-o", "-"]].concat()).ok();
    let svg = parse_svg(&a.stdout);
    assert_eq!(svg.circles.len(), 50);
    assert!(svg.has("50 of the 200 points"), "{}", svg.text);
    let out = dir.path().join("again.svg");
    run(&[&args[..], &["-o", arg(&out)]].concat()).ok();
    assert_eq!(std::fs::read(&out).expect("the SVG file"), a.stdout);
}

/// Runs the daemon on the generator until it ends, keeping its last snapshots.
fn daemon_snapshots(dir: &Path) -> PathBuf {
    let snapshots = dir.join("snapshots");
    let dir_setting = format!("snapshot.dir={}", arg(&snapshots));
    let mut args = vec!["run"];
    for set in [
        "source.kind=generator",
        "source.generator.limit=24000",
        "source.generator.rate=0",
        "source.generator.components=2",
        "model.components=2",
        "estimator.batch_size=500",
        "snapshot.every_points=4000",
        "snapshot.keep=4",
        "scores.sink=none",
        "http.listen=",
        &dir_setting,
    ] {
        args.extend(["--set", set]);
    }
    run(&args).ok();
    snapshots
}

fn snapshot_files(dir: &Path) -> Vec<ModelFile> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the snapshot directory")
        .map(|e| e.expect("an entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| ModelFile::from_bytes(&std::fs::read(p).expect("read")).expect("a snapshot"))
        .collect()
}

#[test]
fn snapshots_show_weights_and_log_likelihood_over_time() {
    let dir = tempdir();
    let snapshots = daemon_snapshots(dir.path());
    let files = snapshot_files(&snapshots);
    assert!(files.len() >= 3, "{} snapshots", files.len());
    let n = files.len();

    // Without data: the change detector's level, where a snapshot has one.
    let levels = files
        .iter()
        .filter(|f| f.state.as_ref().and_then(|s| s.drift.baseline()).is_some())
        .count();
    assert!(levels > 0, "the daemon learned a level");
    let svg = plot(&["--snapshots", arg(&snapshots)]);
    for c in COLOURS {
        assert_eq!(svg.circles_filled(c), n, "a weight marker per snapshot");
    }
    assert_eq!(svg.circles_filled(INK), levels, "a level marker per level");
    assert!(svg.has("points seen"), "{}", svg.text);
    assert!(svg.has("recent median log-density"), "{}", svg.text);
    assert!(svg.has(&format!("{n} in ")), "{}", svg.text);

    // With data: the mean log-likelihood of the same points under every snapshot.
    let newest = dir.path().join("newest.json");
    let json = files[n - 1].to_json().expect("JSON");
    std::fs::write(&newest, json).expect("write");
    let sample = run(&["sample", "-m", arg(&newest), "--n", "300", "--seed", "3"]).ok();
    let data = write(dir.path(), "held.csv", &sample.stdout);
    let svg = plot(&[
        "--snapshots",
        arg(&snapshots),
        "--data",
        arg(&data),
        "--x-axis",
        "version",
    ]);
    assert_eq!(svg.circles_filled(INK), n);
    assert!(svg.has("mean log-likelihood"), "{}", svg.text);
    assert!(svg.has("model version"), "{}", svg.text);
}

#[test]
fn an_unreadable_snapshot_is_skipped_with_a_warning() {
    let dir = tempdir();
    let data = write(dir.path(), "p.csv", csv_text(&two_clusters(), false));
    let model = fit(dir.path(), &data, 2, "m.json");
    let snapshots = dir.path().join("s");
    std::fs::create_dir(&snapshots).expect("mkdir");
    let name = |i: u64| format!("snapshot-{i:020}-{i:020}.json");
    std::fs::copy(&model, snapshots.join(name(1))).expect("copy");
    std::fs::copy(&model, snapshots.join(name(2))).expect("copy");
    write(&snapshots, &name(3), "{ not a model");
    let out = dir.path().join("s.svg");
    let r = run(&["plot", "--snapshots", arg(&snapshots), "-o", arg(&out)]).ok();
    assert!(
        r.stderr.starts_with("gmm-stream: warning: ") && r.stderr.contains(&name(3)),
        "{}",
        r.stderr
    );
    let svg = parse_svg(&std::fs::read(&out).expect("the SVG"));
    assert_eq!(svg.circles_filled(COLOURS[0]), 2);
    assert!(
        svg.has("no snapshot holds"),
        "a batch model has no level: {}",
        svg.text
    );
}

#[test]
fn bad_inputs_exit_2_naming_the_culprit() {
    let dir = tempdir();
    let data = write(dir.path(), "p.csv", csv_text(&two_clusters(), false));
    let model = fit(dir.path(), &data, 2, "m.json");
    let out = dir.path().join("o.svg");
    let o = arg(&out);
    let missing = dir.path().join("nope.json");
    run(&["plot", "-m", arg(&missing), "-o", o]).bad_input(&["nope.json"]);
    let junk = write(dir.path(), "junk.json", "{\"format\": 1}");
    run(&["plot", "-m", arg(&junk), "-o", o]).bad_input(&["junk.json"]);
    let three = write(dir.path(), "p3.csv", "1,2,3\n4,5,6\n");
    run(&["plot", "-m", arg(&model), "--data", arg(&three), "-o", o]).bad_input(&[
        "p3.csv",
        "line 1",
        "2 features",
    ]);
    let bad_point = write(dir.path(), "bad.csv", "1,2\n3,x\n");
    run(&[
        "plot",
        "-m",
        arg(&model),
        "--data",
        arg(&bad_point),
        "-o",
        o,
    ])
    .bad_input(&["bad.csv", "line 2"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    run(&["plot", "--snapshots", arg(&empty), "-o", o])
        .bad_input(&["empty", "no readable snapshot"]);
    run(&["plot", "--snapshots", arg(&data), "-o", o]).bad_input(&["p.csv", "not a directory"]);
    let nowhere = dir.path().join("no/such/dir/o.svg");
    run(&["plot", "-m", arg(&model), "-o", arg(&nowhere)]).bad_input(&["does not exist"]);
    assert!(!out.exists(), "no picture from a failed run");

    // Snapshots of different models cannot share a weight axis.
    let three_k = fit(dir.path(), &data, 3, "m3.json");
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).expect("mkdir");
    std::fs::copy(
        &model,
        mixed.join(format!("snapshot-{:020}-{:020}.json", 1, 1)),
    )
    .expect("cp");
    std::fs::copy(
        &three_k,
        mixed.join(format!("snapshot-{:020}-{:020}.json", 2, 2)),
    )
    .expect("cp");
    run(&["plot", "--snapshots", arg(&mixed), "-o", o]).bad_input(&["3 components", "2"]);

    // clap's usage errors: neither or both subjects.
    assert_eq!(run(&["plot", "-o", o]).code, 2);
    let both = [
        "plot",
        "-m",
        arg(&model),
        "--snapshots",
        arg(&mixed),
        "-o",
        o,
    ];
    assert_eq!(run(&both).code, 2);
}
