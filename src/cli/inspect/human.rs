//! The person-readable rendering of a [`Summary`]: short numbers, long vectors
//! abbreviated.

use std::fmt::Write;

use gmm_io::Positions;

use super::summary::{ComponentSummary, StateSummary, Summary, VariationalSummary};

/// Vectors longer than this show their first and last few values only.
const MAX_SHOWN: usize = 8;

pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let encoding = if s.encoding == "json" {
        "JSON"
    } else {
        "binary"
    };
    let _ = writeln!(
        out,
        "{}: {} version {}, {encoding}",
        s.path, s.format, s.version
    );
    let threshold = s.anomaly_threshold.map_or("none".to_owned(), num);
    let mut rows = vec![
        ("covariance type", s.covariance_type.to_string()),
        ("components", s.n_components.to_string()),
        (
            "effective components",
            format!(
                "{} of {} (above 1 % of the weight)",
                s.effective_components, s.n_components
            ),
        ),
        ("features", s.n_features.to_string()),
        ("points seen", s.points_seen.to_string()),
        ("model version", s.model_version.to_string()),
        (
            "updated at",
            if s.updated_at.is_empty() {
                "not recorded".to_owned()
            } else {
                s.updated_at.clone()
            },
        ),
        ("estimator", estimator(&s.estimator)),
        ("anomaly threshold", threshold),
        ("state", s.state.as_ref().map_or("none".to_owned(), state)),
        (
            "positions",
            s.positions
                .as_ref()
                .map_or("none".to_owned(), Positions::describe),
        ),
    ];
    if let Some(b) = &s.bayesian {
        rows.push(("bayesian", bayesian(b)));
    }
    if let Some(v) = &s.variational {
        rows.push(("variational", variational(v)));
    }
    for (label, value) in rows {
        let _ = writeln!(out, "{label:<18} {value}");
    }
    for (k, c) in s.components.iter().enumerate() {
        component(&mut out, k, c);
    }
    out
}

fn bayesian(b: &gmm_io::BayesianInfo) -> String {
    format!(
        "{}, weight concentration prior {}, mean precision prior {}, \
         degrees of freedom prior {}",
        b.weight_concentration_prior_type,
        num(b.weight_concentration_prior),
        num(b.mean_precision_prior),
        num(b.degrees_of_freedom_prior)
    )
}

fn variational(v: &VariationalSummary) -> String {
    let mut text = format!(
        "{} live components, {} weights, retired below {}",
        v.live_components,
        v.settings.weight_prior,
        num(v.settings.retire_weight)
    );
    if let (Some(b), Some(r), Some(m)) = (v.births, v.retirements, v.merges) {
        let _ = write!(text, "; {b} births, {r} retirements, {m} merges");
    }
    text
}

fn component(out: &mut String, k: usize, c: &ComponentSummary) {
    let _ = writeln!(out, "\ncomponent {k}: weight {}", num(c.weight));
    let _ = writeln!(out, "  mean      {}", vector(&c.mean));
    let _ = writeln!(out, "  std devs  {}", vector(&c.std_devs));
    let _ = writeln!(
        out,
        "  covariance log-determinant {}, condition number {}",
        num(c.log_det),
        num(c.condition_number)
    );
}

/// The estimator's kind, then its settings as `key=value`, whatever they are (the
/// online settings grow; this need not follow).
fn estimator(info: &gmm_io::EstimatorInfo) -> String {
    if info.is_unspecified() {
        return "not recorded (only the mixture is known)".to_owned();
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(info) else {
        return "unknown".to_owned();
    };
    let kind = map
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("unknown")
        .to_owned();
    let settings: Vec<String> = map
        .iter()
        .filter(|(key, _)| key.as_str() != "kind")
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => format!("{key}={s}"),
            other => format!("{key}={other}"),
        })
        .collect();
    format!("{kind} ({})", settings.join(", "))
}

fn state(s: &StateSummary) -> String {
    format!(
        "online estimator state: {} batches, {} points, {} re-seeds, {} rebuilds, \
         {} warm-up points buffered{}",
        s.batches,
        s.points_seen,
        s.reseeds,
        s.rebuilds,
        s.warmup_points,
        if s.has_statistics {
            ""
        } else {
            ", no statistics yet"
        }
    )
}

/// `[a, b, c]`, or `[a, b, c, d, ..., y, z] (n values)` when long.
fn vector(v: &[f64]) -> String {
    if v.len() <= MAX_SHOWN {
        let all: Vec<String> = v.iter().map(|&x| num(x)).collect();
        return format!("[{}]", all.join(", "));
    }
    let head: Vec<String> = v[..4].iter().map(|&x| num(x)).collect();
    let tail: Vec<String> = v[v.len() - 2..].iter().map(|&x| num(x)).collect();
    format!(
        "[{}, ..., {}] ({} values)",
        head.join(", "),
        tail.join(", "),
        v.len()
    )
}

/// Six significant digits, without trailing zeros; scientific notation for very
/// large or small magnitudes.
fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..9).contains(&magnitude) {
        return format!("{x:.5e}");
    }
    let decimals = (5 - magnitude).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_six_significant_digits() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-1.234567891), "-1.23457");
        assert_eq!(num(123456.789), "123457");
        assert_eq!(num(0.000123456789), "0.000123457");
        assert_eq!(num(1.5e-7), "1.50000e-7");
        assert_eq!(num(2.5e12), "2.50000e12");
    }

    #[test]
    fn long_vectors_are_abbreviated() {
        assert_eq!(vector(&[1.0, 2.5]), "[1, 2.5]");
        let long: Vec<f64> = (0..20).map(f64::from).collect();
        assert_eq!(vector(&long), "[0, 1, 2, 3, ..., 18, 19] (20 values)");
    }
}
