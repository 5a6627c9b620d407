use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::*;

/// Log-density of a 4-d standard Gaussian point, with a few far outliers: a long,
/// sparse lower tail like the daemon sees.
fn log_density(rng: &mut ChaCha8Rng) -> f64 {
    let scale = if rng.random::<f64>() < 0.003 {
        30.0
    } else {
        1.0
    };
    let chi2: f64 = (0..4)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            z * z * scale
        })
        .sum();
    -0.5 * (4.0 * (2.0 * std::f64::consts::PI).ln() + chi2)
}

/// The lower empirical quantile, by sorting.
fn exact_quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[k - 1]
}

/// The points the window covers after `seen` points: whole blocks, the last
/// `BLOCKS` full ones and the one being filled.
fn window_start(seen: usize, block_len: usize) -> usize {
    (seen / block_len).saturating_sub(BLOCKS) * block_len
}

#[test]
fn equals_the_exact_quantile_of_its_window_at_every_batch() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (q, window) in [(0.001, 20_000), (0.01, 5_000), (0.2, 1_000), (0.001, 100)] {
        let mut t = AnomalyThreshold::new(q, window).expect("valid");
        let mut seen: Vec<f64> = Vec::new();
        while seen.len() < 6 * window {
            let n = rng.random_range(1..window / 3);
            // A shift of the distribution halfway, as drift would cause.
            let shift = if seen.len() > 3 * window { -4.0 } else { 0.0 };
            let batch: Vec<f64> = (0..n).map(|_| log_density(&mut rng) + shift).collect();
            t.observe_batch(&batch);
            seen.extend_from_slice(&batch);
            let win = &seen[window_start(seen.len(), t.block_len)..];
            assert_eq!(t.len(), win.len());
            let expected = (win.len() >= t.min_points()).then(|| exact_quantile(win, q));
            assert_eq!(t.threshold(), expected, "q {q}, window {window}");
        }
    }
}

#[test]
fn no_threshold_until_enough_points() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut t = AnomalyThreshold::new(0.001, 100_000).expect("valid");
    assert_eq!(t.min_points(), 10_000);
    let batch: Vec<f64> = (0..9_999).map(|_| log_density(&mut rng)).collect();
    t.observe_batch(&batch);
    assert_eq!(t.threshold(), None);
    t.observe_batch(&[-1.0]);
    assert!(t.threshold().is_some());
    // A window too short for 10 points below the quantile still answers once full.
    let t = AnomalyThreshold::new(0.001, 500).expect("valid");
    assert_eq!(t.min_points(), 500);
    assert_eq!(
        AnomalyThreshold::new(0.3, 10_000).expect("ok").min_points(),
        100
    );
}

#[test]
fn follows_a_shift_within_about_one_window() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (q, window) = (0.001, 50_000);
    let mut t = AnomalyThreshold::new(q, window).expect("valid");
    let before: Vec<f64> = (0..2 * window).map(|_| log_density(&mut rng)).collect();
    t.observe_batch(&before);
    let old = t.threshold().expect("threshold");
    let after: Vec<f64> = (0..2 * window)
        .map(|_| log_density(&mut rng) - 20.0)
        .collect();
    let mut fed = 0;
    let mut forgotten_at = None;
    for batch in after.chunks(1000) {
        t.observe_batch(batch);
        fed += batch.len();
        let now = t.threshold().expect("threshold");
        let target = exact_quantile(&after[..fed.max(1)], q);
        if forgotten_at.is_none() && now == target {
            forgotten_at = Some(fed);
        }
    }
    let forgotten_at = forgotten_at.expect("follows the shift");
    assert!(forgotten_at <= window + window / BLOCKS, "{forgotten_at}");
    assert!(t.threshold().expect("threshold") < old - 15.0);
}

#[test]
fn flags_about_the_configured_fraction_prequentially() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (q, window) = (0.01, 10_000);
    let mut t = AnomalyThreshold::new(q, window).expect("valid");
    let (mut flagged, mut judged) = (0usize, 0usize);
    for _ in 0..300 {
        let batch: Vec<f64> = (0..1000).map(|_| log_density(&mut rng)).collect();
        if let Some(threshold) = t.threshold() {
            judged += batch.len();
            flagged += batch
                .iter()
                .filter(|&&v| is_anomaly(v, Some(threshold)))
                .count();
        }
        t.observe_batch(&batch);
    }
    let rate = flagged as f64 / judged as f64;
    assert!((0.8 * q..1.2 * q).contains(&rate), "flagged {rate}");
}

#[test]
fn saved_state_restores_and_continues_identically() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut t = AnomalyThreshold::new(0.002, 3_000).expect("valid");
    let batch: Vec<f64> = (0..7_777).map(|_| log_density(&mut rng)).collect();
    t.observe_batch(&batch);
    t.observe_batch(&[f64::NEG_INFINITY, f64::NAN, f64::INFINITY]);
    let json = serde_json::to_string(&t).expect("serialize");
    let mut back: AnomalyThreshold = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, t);
    assert_eq!(back.threshold(), t.threshold());
    let bin = bincode::serde::encode_to_vec(&t, bincode::config::standard()).expect("bincode");
    let (from_bin, _): (AnomalyThreshold, usize) =
        bincode::serde::decode_from_slice(&bin, bincode::config::standard()).expect("bincode");
    assert_eq!(from_bin, t);
    for _ in 0..5 {
        let more: Vec<f64> = (0..1_234).map(|_| log_density(&mut rng)).collect();
        t.observe_batch(&more);
        back.observe_batch(&more);
        assert_eq!(back.threshold(), t.threshold());
    }
    assert!(json.len() < 2_000, "{} bytes", json.len());
}

#[test]
fn infinities_are_clamped_and_nan_ignored() {
    let mut t = AnomalyThreshold::new(0.01, 100).expect("valid");
    let mut values = vec![0.0; 99];
    values.push(f64::NEG_INFINITY);
    values.push(f64::NAN);
    t.observe_batch(&values);
    assert_eq!(t.len(), 100);
    assert_eq!(t.threshold(), Some(f64::MIN));
    assert!(serde_json::to_string(&t).is_ok());
}

#[test]
fn inconsistent_state_and_settings_are_refused() {
    assert_eq!(
        AnomalyThreshold::new(0.0, 1000),
        Err(AnomalyError::Quantile(0.0))
    );
    assert!(AnomalyThreshold::new(f64::NAN, 1000).is_err());
    assert_eq!(AnomalyThreshold::new(0.1, 5), Err(AnomalyError::Window(5)));
    let bad = [
        r#"{"quantile":0.1,"window":100,"blocks":[]}"#,
        r#"{"quantile":0.1,"window":100,"blocks":[{"len":3,"lowest":[1.0]}]}"#,
        r#"{"quantile":0.1,"window":100,"blocks":[{"len":10,"lowest":[1.0,2.0]}]}"#,
        r#"{"quantile":2.0,"window":100,"blocks":[{"len":0,"lowest":[]}]}"#,
    ];
    for text in bad {
        assert!(
            serde_json::from_str::<AnomalyThreshold>(text).is_err(),
            "{text}"
        );
    }
    let ok = r#"{"quantile":0.1,"window":100,"blocks":[{"len":2,"lowest":[1.0,2.0]}]}"#;
    let t: AnomalyThreshold = serde_json::from_str(ok).expect("valid");
    assert_eq!(t.len(), 2);
}

#[test]
fn resume_keeps_a_matching_state_only() {
    let mut t = AnomalyThreshold::new(0.01, 1000).expect("valid");
    t.observe_batch(&[1.0; 500]);
    let (same, used) = AnomalyThreshold::resume(Some(t.clone()), 0.01, 1000).expect("ok");
    assert!(used);
    assert_eq!(same, t);
    let (fresh, used) = AnomalyThreshold::resume(Some(t), 0.02, 1000).expect("ok");
    assert!(!used);
    assert!(fresh.is_empty());
    assert!(AnomalyThreshold::resume(None, 0.01, 1).is_err());
}
