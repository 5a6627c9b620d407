//! The model file (`docs/reference.md`, "The model file"): JSON, or a checksummed binary form
//! with the same content.
//!
//! Binary layout: the 16-byte magic `GMM-STREAM-MODEL`, the format version (u32 LE),
//! the payload length (u64 LE), the bincode payload, and a CRC-32 (u32 LE) of every
//! byte before it. A truncated or corrupted file is refused, never half-loaded.
//!
//! Only bytes are handled here; reading and writing files is the caller's business.

use bincode::{Decode, Encode};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use gmm_model::anomaly::AnomalyThreshold;
use gmm_model::{
    CovarianceType, Covariances, GaussianMixture, ModelError, OnlineSettings, OnlineState,
};

use crate::extensions::Extensions;
use crate::positions::Positions;

pub const FORMAT_NAME: &str = "gmm-stream.model";
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 16] = b"GMM-STREAM-MODEL";
const HEADER_LEN: usize = MAGIC.len() + 4 + 8;
const CHECKSUM_LEN: usize = 4;

#[derive(Debug, Error)]
pub enum FormatError {
    #[error("not valid model JSON")]
    Json(#[from] serde_json::Error),
    #[error("not a gmm-stream model file (neither JSON nor the binary magic)")]
    NotAModel,
    #[error("model file format {found:?} is not {FORMAT_NAME:?}")]
    WrongFormat { found: String },
    #[error("model file version {0} is not supported (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u32),
    #[error("the binary model is truncated ({got} bytes, expected {expected})")]
    Truncated { expected: u64, got: u64 },
    #[error("the binary model is corrupted (checksum mismatch)")]
    Checksum,
    #[error("the binary model payload cannot be decoded: {0}")]
    Decode(String),
    #[error("the binary model cannot be encoded: {0}")]
    Encode(String),
    #[error("the model file is inconsistent: {0}")]
    Inconsistent(String),
    #[error("the model file holds an invalid mixture")]
    Invalid(#[from] ModelError),
}

/// Which form a model file takes: JSON when the path ends in `.json`, else binary.
/// In settings (`snapshot.format`): `json` or `bin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Json,
    #[serde(rename = "bin")]
    Binary,
}

impl Encoding {
    pub fn for_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Binary,
        }
    }

    /// The form of a file's bytes, told by their start: the binary magic, or a
    /// JSON object. None: neither, not a model file.
    pub fn of_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(MAGIC) {
            Some(Self::Binary)
        } else if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            Some(Self::Json)
        } else {
            None
        }
    }
}

/// The covariances as scikit-learn's `covariances_`: full `[K][d][d]`, diag `[K][d]`,
/// spherical `[K]`, tied `[d][d]`. JSON carries the bare arrays; which layout they
/// are is told by `covariance_type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(untagged)]
pub enum CovarianceValues {
    Scalars(Vec<f64>),
    Rows(Vec<Vec<f64>>),
    Matrices(Vec<Vec<Vec<f64>>>),
}

/// How a batch fit was run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct BatchInfo {
    pub max_iter: u64,
    pub tol: f64,
    pub reg_covar: f64,
    pub n_init: u64,
    /// The initialisation method, or `model` for `--init-model`.
    pub init: String,
    pub seed: u64,
    pub converged: bool,
    pub n_iter: u64,
    /// Final mean log-likelihood per point (absent when no iteration ran).
    pub lower_bound: Option<f64>,
}

/// The estimator settings that produced a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EstimatorInfo {
    Batch(BatchInfo),
    Online(#[bincode(with_serde)] OnlineSettings),
    /// The file names no estimator (a model written by another tool). Last, so the
    /// binary form's variant numbers of the others stay what they were.
    Unspecified,
}

impl EstimatorInfo {
    pub fn is_unspecified(&self) -> bool {
        matches!(self, Self::Unspecified)
    }
}

/// `estimator` on input: absent, `null` or an object without `kind` (`{}`) is
/// [`EstimatorInfo::Unspecified`]; an object with a `kind` must be a whole one.
fn estimator_or_unspecified<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<EstimatorInfo, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let named = value.as_object().is_some_and(|o| o.contains_key("kind"));
    if value.is_null() || (value.is_object() && !named) {
        return Ok(EstimatorInfo::Unspecified);
    }
    EstimatorInfo::deserialize(value).map_err(serde::de::Error::custom)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct ModelFile {
    pub format: String,
    pub version: u32,
    #[bincode(with_serde)]
    pub covariance_type: CovarianceType,
    pub n_components: u64,
    pub n_features: u64,
    pub weights: Vec<f64>,
    pub means: Vec<Vec<f64>>,
    pub covariances: CovarianceValues,
    // Only the fields above are required on input: a model written by another tool
    // (scikit-learn's parameters) loads everywhere. Absent, the rest are zero, empty
    // or unspecified.
    /// Points absorbed since the model was born (never decayed).
    #[serde(default)]
    pub points_seen: u64,
    /// +1 at every M-step.
    #[serde(default)]
    pub model_version: u64,
    /// RFC 3339; empty when the file does not say.
    #[serde(default)]
    pub updated_at: String,
    /// Log-density below which a point is flagged as an anomaly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_threshold: Option<f64>,
    /// The running quantile behind `anomaly_threshold`, so a restart continues it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[bincode(with_serde)]
    pub anomaly_state: Option<AnomalyThreshold>,
    #[serde(
        default = "unspecified",
        deserialize_with = "estimator_or_unspecified",
        skip_serializing_if = "EstimatorInfo::is_unspecified"
    )]
    pub estimator: EstimatorInfo,
    /// The online estimator's state, so a restored model continues exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[bincode(with_serde)]
    pub state: Option<OnlineState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[bincode(with_serde)]
    pub positions: Option<Positions>,
    /// Variational inference's `bayesian` and `variational` objects (last: a
    /// trailing section of the binary form, see `extensions`).
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl ModelFile {
    /// A file for `model`; counters start at zero and optional parts are empty.
    pub fn new(model: &GaussianMixture, estimator: EstimatorInfo, updated_at: String) -> Self {
        let (k, d) = (model.n_components(), model.n_features());
        let mut extensions = Extensions::default();
        if let EstimatorInfo::Online(settings) = &estimator {
            let live = model.weights().iter().filter(|&&w| w > 0.0).count();
            extensions.record_online(settings, live, None);
        }
        let means = model
            .means()
            .column_iter()
            .map(|c| c.iter().copied().collect())
            .collect();
        Self {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            covariance_type: model.covariance_type(),
            n_components: k as u64,
            n_features: d as u64,
            weights: model.weights().iter().copied().collect(),
            means,
            covariances: covariance_values(model.covariances()),
            points_seen: 0,
            model_version: 0,
            updated_at,
            anomaly_threshold: None,
            anomaly_state: None,
            estimator,
            state: None,
            positions: None,
            extensions,
        }
    }

    /// Stores the online estimator's state (its variational part goes to the
    /// extensions, with the variational settings).
    pub fn set_online_state(&mut self, settings: &OnlineSettings, state: OnlineState) {
        let live = self.live_components();
        self.extensions.record_online(settings, live, Some(&state));
        self.state = Some(state);
    }

    /// Components with weight (a retired slot of online variational inference has
    /// none).
    pub fn live_components(&self) -> usize {
        self.weights.iter().filter(|&&w| w > 0.0).count()
    }

    /// The online estimator's state, whole again.
    pub fn online_state(&self) -> Option<OnlineState> {
        let mut state = self.state.clone()?;
        self.extensions.restore_state(&mut state);
        Some(state)
    }

    /// The settings of the online estimator that wrote the file, whole again.
    pub fn online_settings(&self) -> Option<OnlineSettings> {
        match &self.estimator {
            EstimatorInfo::Online(s) => {
                let mut s = s.clone();
                self.extensions.restore_settings(&mut s);
                Some(s)
            }
            EstimatorInfo::Batch(_) | EstimatorInfo::Unspecified => None,
        }
    }

    /// The mixture the file describes, validated.
    pub fn mixture(&self) -> Result<GaussianMixture, FormatError> {
        self.check_header()?;
        let (k, d) = (self.n_components as usize, self.n_features as usize);
        let inconsistent = |what: String| FormatError::Inconsistent(what);
        if self.means.len() != k || self.means.iter().any(|m| m.len() != d) {
            return Err(inconsistent(format!(
                "means must be {k} rows of {d} values (n_components x n_features)"
            )));
        }
        if self.weights.len() != k {
            return Err(inconsistent(format!(
                "{} weights for {k} components",
                self.weights.len()
            )));
        }
        let weights = DVector::from_column_slice(&self.weights);
        let means = DMatrix::from_fn(d, k, |i, j| self.means[j][i]);
        let covariances = self.covariances_for(k, d)?;
        Ok(GaussianMixture::new(weights, means, covariances)?)
    }

    fn check_header(&self) -> Result<(), FormatError> {
        if self.format != FORMAT_NAME {
            return Err(FormatError::WrongFormat {
                found: self.format.clone(),
            });
        }
        if self.version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(self.version));
        }
        Ok(())
    }

    fn covariances_for(&self, k: usize, d: usize) -> Result<Covariances, FormatError> {
        let t = self.covariance_type;
        let bad = || {
            FormatError::Inconsistent(format!(
                "covariances do not have the {t} layout for K = {k}, d = {d} \
                 (full [K][d][d], diag [K][d], spherical [K], tied [d][d])"
            ))
        };
        let rows_ok =
            |r: &Vec<Vec<f64>>, n: usize, m: usize| r.len() == n && r.iter().all(|x| x.len() == m);
        match (t, &self.covariances) {
            (CovarianceType::Full, CovarianceValues::Matrices(m))
                if m.len() == k && m.iter().all(|c| rows_ok(c, d, d)) =>
            {
                Ok(Covariances::Full(
                    m.iter()
                        .map(|c| DMatrix::from_fn(d, d, |i, j| c[i][j]))
                        .collect(),
                ))
            }
            (CovarianceType::Diag, CovarianceValues::Rows(r)) if rows_ok(r, k, d) => {
                Ok(Covariances::Diag(DMatrix::from_fn(d, k, |i, j| r[j][i])))
            }
            (CovarianceType::Spherical, CovarianceValues::Scalars(v)) if v.len() == k => {
                Ok(Covariances::Spherical(DVector::from_column_slice(v)))
            }
            (CovarianceType::Tied, CovarianceValues::Rows(r)) if rows_ok(r, d, d) => {
                Ok(Covariances::Tied(DMatrix::from_fn(d, d, |i, j| r[i][j])))
            }
            _ => Err(bad()),
        }
    }

    /// Pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        let mut out = serde_json::to_vec_pretty(self)?;
        out.push(b'\n');
        Ok(out)
    }

    pub fn to_binary(&self) -> Result<Vec<u8>, FormatError> {
        let payload = bincode::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| FormatError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + CHECKSUM_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    pub fn encode(&self, encoding: Encoding) -> Result<Vec<u8>, FormatError> {
        match encoding {
            Encoding::Json => self.to_json(),
            Encoding::Binary => self.to_binary(),
        }
    }

    /// Reads either form, recognised by its first bytes, and validates the mixture.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let file = match Encoding::of_bytes(bytes) {
            Some(Encoding::Binary) => Self::from_binary(bytes)?,
            Some(Encoding::Json) => serde_json::from_slice(bytes)?,
            None => return Err(FormatError::NotAModel),
        };
        file.mixture()?;
        Ok(file)
    }

    fn from_binary(bytes: &[u8]) -> Result<Self, FormatError> {
        let got = bytes.len() as u64;
        let header = bytes.get(..HEADER_LEN).ok_or(FormatError::Truncated {
            expected: (HEADER_LEN + CHECKSUM_LEN) as u64,
            got,
        })?;
        let version = u32::from_le_bytes(le_array(&header[16..20]));
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let payload_len = u64::from_le_bytes(le_array(&header[20..28]));
        let expected = (HEADER_LEN + CHECKSUM_LEN) as u64 + payload_len;
        if got != expected {
            return Err(FormatError::Truncated { expected, got });
        }
        let body_end = bytes.len() - CHECKSUM_LEN;
        let stored = u32::from_le_bytes(le_array(&bytes[body_end..]));
        if crc32fast::hash(&bytes[..body_end]) != stored {
            return Err(FormatError::Checksum);
        }
        let (file, used): (Self, usize) =
            bincode::decode_from_slice(&bytes[HEADER_LEN..body_end], bincode::config::standard())
                .map_err(|e| FormatError::Decode(e.to_string()))?;
        if used != body_end - HEADER_LEN {
            return Err(FormatError::Decode(
                "trailing bytes after the payload".into(),
            ));
        }
        Ok(file)
    }
}

fn unspecified() -> EstimatorInfo {
    EstimatorInfo::Unspecified
}

/// Copies a slice of known length into an array (lengths are checked by the caller).
fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn covariance_values(cov: &Covariances) -> CovarianceValues {
    let rows = |m: &DMatrix<f64>| -> Vec<Vec<f64>> {
        m.row_iter().map(|r| r.iter().copied().collect()).collect()
    };
    match cov {
        Covariances::Full(ms) => CovarianceValues::Matrices(ms.iter().map(rows).collect()),
        Covariances::Diag(v) => CovarianceValues::Rows(
            v.column_iter()
                .map(|c| c.iter().copied().collect())
                .collect(),
        ),
        Covariances::Spherical(v) => CovarianceValues::Scalars(v.iter().copied().collect()),
        Covariances::Tied(m) => CovarianceValues::Rows(rows(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::BayesianInfo;
    use gmm_model::{OnlineEm, OnlineSettings};

    fn mixture(t: CovarianceType) -> GaussianMixture {
        let (k, d) = (2, 3);
        let weights = DVector::from_vec(vec![0.25, 0.75]);
        let means = DMatrix::from_fn(d, k, |i, j| 1e6 + i as f64 * 0.1 - j as f64 * 3.0);
        let full = DMatrix::from_row_slice(3, 3, &[2.0, 0.3, 0.1, 0.3, 1.0, 0.2, 0.1, 0.2, 0.5]);
        let cov = match t {
            CovarianceType::Full => Covariances::Full(vec![full.clone(), full * 0.1]),
            CovarianceType::Diag => {
                Covariances::Diag(DMatrix::from_fn(d, k, |i, j| 0.1 + (i + j) as f64))
            }
            CovarianceType::Spherical => Covariances::Spherical(DVector::from_vec(vec![0.3, 1.7])),
            CovarianceType::Tied => Covariances::Tied(full),
        };
        GaussianMixture::new(weights, means, cov).expect("valid")
    }

    fn file_with_state() -> ModelFile {
        let model = mixture(CovarianceType::Full);
        let settings = OnlineSettings {
            covariance_type: CovarianceType::Full,
            ..OnlineSettings::new(2)
        };
        let est = OnlineEm::from_model(settings.clone(), model.clone(), 100.0).expect("ok");
        let mut f = ModelFile::new(
            &model,
            EstimatorInfo::Online(settings),
            "2026-11-22T00:00:00Z".into(),
        );
        f.state = Some(est.state().clone());
        f.points_seen = 12;
        f.model_version = 3;
        f.anomaly_threshold = Some(-17.25);
        let mut offsets = crate::KafkaOffsets::new();
        offsets.set("points", 0, 41);
        offsets.set("points", 3, 7);
        f.positions = Some(Positions::Kafka(offsets));
        f
    }

    #[test]
    fn every_covariance_type_round_trips_exactly_in_both_forms() {
        for t in CovarianceType::ALL {
            let model = mixture(t);
            let info = EstimatorInfo::Batch(BatchInfo {
                max_iter: 100,
                tol: 1e-3,
                reg_covar: 1e-6,
                n_init: 1,
                init: "kmeans".into(),
                seed: 7,
                converged: true,
                n_iter: 12,
                lower_bound: Some(-3.5),
            });
            let file = ModelFile::new(&model, info, "2026-11-22T00:00:00Z".into());
            for bytes in [
                file.to_json().expect("json"),
                file.to_binary().expect("bin"),
            ] {
                let back = ModelFile::from_bytes(&bytes).expect("loads");
                assert_eq!(back, file, "{t}");
                assert_eq!(back.mixture().expect("valid"), model, "{t}");
            }
        }
    }

    #[test]
    fn state_and_positions_round_trip() {
        let file = file_with_state();
        let json = file.to_json().expect("json");
        assert_eq!(ModelFile::from_bytes(&json).expect("json loads"), file);
        let bin = file.to_binary().expect("bin");
        assert_eq!(ModelFile::from_bytes(&bin).expect("bin loads"), file);
        let text = String::from_utf8(json).expect("utf8");
        assert!(text.contains("\"kind\": \"online\""), "{text}");
        assert!(text.contains("\"anomaly_threshold\": -17.25"));
    }

    #[test]
    fn json_fields_are_the_contract_names() {
        let file = ModelFile::new(
            &mixture(CovarianceType::Diag),
            EstimatorInfo::Online(OnlineSettings::new(2)),
            "2026-11-22T00:00:00Z".into(),
        );
        let v: serde_json::Value =
            serde_json::from_slice(&file.to_json().expect("json")).expect("parse");
        for key in [
            "format",
            "version",
            "covariance_type",
            "n_components",
            "n_features",
            "weights",
            "means",
            "covariances",
            "points_seen",
            "model_version",
            "updated_at",
            "estimator",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["format"], "gmm-stream.model");
        assert_eq!(v["covariance_type"], "diag");
        assert_eq!(v["covariances"].as_array().map(|a| a.len()), Some(2));
        assert!(v.get("state").is_none() && v.get("anomaly_threshold").is_none());
    }

    #[test]
    fn truncated_or_corrupted_binary_is_refused() {
        let bin = file_with_state().to_binary().expect("bin");
        for cut in [0, 10, HEADER_LEN, bin.len() / 2, bin.len() - 1] {
            let err = ModelFile::from_bytes(&bin[..cut]).expect_err("truncated");
            assert!(
                matches!(err, FormatError::Truncated { .. } | FormatError::NotAModel),
                "cut {cut}: {err}"
            );
        }
        for pos in [HEADER_LEN + 1, bin.len() / 2, bin.len() - 2] {
            let mut bad = bin.clone();
            bad[pos] ^= 0x40;
            let err = ModelFile::from_bytes(&bad).expect_err("corrupted");
            assert!(matches!(err, FormatError::Checksum), "byte {pos}: {err}");
        }
        let mut future = bin.clone();
        future[16] = 9;
        assert!(matches!(
            ModelFile::from_bytes(&future),
            Err(FormatError::UnsupportedVersion(9))
        ));
        assert!(matches!(
            ModelFile::from_bytes(b"hello"),
            Err(FormatError::NotAModel)
        ));
    }

    #[test]
    fn inconsistent_or_invalid_json_is_refused_with_a_reason() {
        let good = ModelFile::new(
            &mixture(CovarianceType::Tied),
            EstimatorInfo::Online(OnlineSettings::new(2)),
            "t".into(),
        );
        let mut v: serde_json::Value =
            serde_json::from_slice(&good.to_json().expect("json")).expect("parse");
        v["weights"] = serde_json::json!([0.5, 0.7]);
        // The reason is the error's cause: "invalid mixture: weights ... sum to".
        let reason = |err: FormatError| {
            let cause = std::error::Error::source(&err).map(|c| c.to_string());
            format!("{err}: {}", cause.unwrap_or_default())
        };
        let err = ModelFile::from_bytes(v.to_string().as_bytes()).expect_err("weights");
        let err = reason(err);
        assert!(err.contains("sum to"), "{err}");
        v["weights"] = serde_json::json!([0.5, 0.5]);
        v["covariances"] = serde_json::json!([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let err = ModelFile::from_bytes(v.to_string().as_bytes()).expect_err("indefinite");
        let err = reason(err);
        assert!(err.contains("positive definite"), "{err}");
        v["covariances"] = serde_json::json!([1.0, 2.0]);
        let err = ModelFile::from_bytes(v.to_string().as_bytes()).expect_err("layout");
        let err = reason(err);
        assert!(err.contains("tied layout"), "{err}");
        v["version"] = serde_json::json!(2);
        assert!(matches!(
            ModelFile::from_bytes(v.to_string().as_bytes()),
            Err(FormatError::UnsupportedVersion(2))
        ));
    }

    /// The mixture fields alone, as another tool writes them.
    fn minimal_json() -> serde_json::Value {
        serde_json::json!({
            "format": "gmm-stream.model",
            "version": 1,
            "covariance_type": "spherical",
            "n_components": 2,
            "n_features": 2,
            "weights": [0.4, 0.6],
            "means": [[0.0, 1.0], [5.0, -2.0]],
            "covariances": [1.5, 0.25]
        })
    }

    #[test]
    fn the_mixture_fields_alone_are_a_model_file() {
        let file = ModelFile::from_bytes(minimal_json().to_string().as_bytes()).expect("loads");
        assert_eq!(file.estimator, EstimatorInfo::Unspecified);
        assert_eq!((file.points_seen, file.model_version), (0, 0));
        assert!(file.updated_at.is_empty() && file.state.is_none());
        assert_eq!(file.mixture().expect("valid").n_components(), 2);
        // Written back, it stays minimal: no estimator object is made up.
        let again: serde_json::Value =
            serde_json::from_slice(&file.to_json().expect("json")).expect("parse");
        assert!(again.get("estimator").is_none(), "{again}");
        let bin = file.to_binary().expect("bin");
        assert_eq!(ModelFile::from_bytes(&bin).expect("bin loads"), file);
    }

    #[test]
    fn an_estimator_without_kind_is_unspecified_and_a_wrong_kind_is_refused() {
        for empty in [serde_json::json!({}), serde_json::Value::Null] {
            let mut v = minimal_json();
            v["estimator"] = empty;
            let file = ModelFile::from_bytes(v.to_string().as_bytes()).expect("loads");
            assert_eq!(file.estimator, EstimatorInfo::Unspecified);
        }
        let mut v = minimal_json();
        v["estimator"] = serde_json::json!({"kind": "magic"});
        let err = ModelFile::from_bytes(v.to_string().as_bytes()).expect_err("bad kind");
        assert!(err.to_string().contains("magic"), "{err}");
        v["estimator"] = serde_json::json!({"kind": "batch", "max_iter": 3});
        let err = ModelFile::from_bytes(v.to_string().as_bytes()).expect_err("half a batch");
        assert!(err.to_string().contains("missing field"), "{err}");
    }

    /// A binary file written before `Unspecified` existed (the committed fixture)
    /// loads, and encodes to the same bytes again.
    #[test]
    fn binary_files_from_before_optional_fields_keep_their_bytes() {
        let old: &[u8] = include_bytes!("testdata/batch_model_v1.bin");
        let file = ModelFile::from_bytes(old).expect("an earlier file loads");
        assert!(matches!(&file.estimator, EstimatorInfo::Batch(b) if b.n_iter == 12));
        assert_eq!((file.points_seen, file.model_version), (500, 12));
        assert_eq!(file.to_binary().expect("bin"), old);
    }

    /// A binary snapshot written before the variational extensions existed (the
    /// committed fixture is `file_with_state()` as that layout encodes it) loads,
    /// and a file without extensions still encodes to exactly those bytes.
    #[test]
    fn snapshots_from_before_the_extensions_load_and_keep_their_bytes() {
        let old: &[u8] = include_bytes!("testdata/em_snapshot_v1.bin");
        let back = ModelFile::from_bytes(old).expect("an earlier snapshot loads");
        assert_eq!(back, file_with_state());
        assert_eq!(file_with_state().to_binary().expect("bin"), old);
    }

    /// A variational fit's `bayesian` object and an online variational snapshot's
    /// `variational` object survive both forms.
    #[test]
    fn variational_extensions_round_trip() {
        use gmm_model::{
            fit_variational, points_from_rows, Inference, VariationalSettings, WeightPriorType,
        };
        let flat: Vec<f64> = (0..120)
            .map(|i| ((i * 37 % 23) as f64) * 0.3 + (i % 2) as f64 * 9.0)
            .collect();
        let x = points_from_rows(&flat, 2).expect("points");
        for t in CovarianceType::ALL {
            let mut settings = VariationalSettings::new(3, WeightPriorType::DirichletProcess);
            settings.em.covariance_type = t;
            let report = fit_variational(x, &settings, &mut |_| {}).expect("fit");
            let mut file = file_with_state();
            file.extensions.bayesian = Some(BayesianInfo::new(&report.posterior, &report.prior));
            let online = OnlineSettings {
                inference: Inference::Variational,
                ..OnlineSettings::new(2)
            };
            file.extensions.record_online(&online, 2, None);
            for bytes in [
                file.to_json().expect("json"),
                file.to_binary().expect("bin"),
            ] {
                let back = ModelFile::from_bytes(&bytes).expect("loads");
                assert_eq!(back, file, "{t}");
                let mut settings = OnlineSettings::new(2);
                back.extensions.restore_settings(&mut settings);
                assert_eq!(settings, online);
            }
            let json: serde_json::Value =
                serde_json::from_slice(&file.to_json().expect("json")).expect("parse");
            let b = &json["bayesian"];
            assert_eq!(b["weight_concentration_prior_type"], "dirichlet_process");
            assert_eq!(
                b["weight_concentration"].as_array().map(|a| a.len()),
                Some(2)
            );
            assert_eq!(
                b["degrees_of_freedom"].is_number(),
                t == CovarianceType::Tied,
                "{t}"
            );
        }
    }

    #[test]
    fn encoding_follows_the_extension() {
        use std::path::Path;
        assert_eq!(Encoding::for_path(Path::new("m.json")), Encoding::Json);
        assert_eq!(Encoding::for_path(Path::new("m.JSON")), Encoding::Json);
        assert_eq!(Encoding::for_path(Path::new("m.bin")), Encoding::Binary);
        assert_eq!(Encoding::for_path(Path::new("model")), Encoding::Binary);
    }
}
