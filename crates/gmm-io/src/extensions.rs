//! What variational inference adds to a model file: the `bayesian` object of a batch
//! variational fit (scikit-learn's posterior attributes and the priors used), and the
//! `variational` object of the online estimator (its settings and, in snapshots, its
//! state).
//!
//! In the binary form they are a trailing section, written only when present and
//! read only when bytes remain: a model without them is byte for byte what earlier
//! builds wrote, and files written before they existed still load. (The online
//! estimator's serde-encoded settings and state keep their earlier layout for the
//! same reason: the fields variational inference added to them travel here.)

use bincode::de::read::Reader;
use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::file_identity::FileIdentity;
use crate::group_info::GroupInfo;

use gmm_model::{
    CovariancePrior, CovarianceType, GaussianMixture, Inference, ModelError, OnlineSettings,
    OnlineState, OnlineVariational, Posterior, VariationalPrior, VariationalState,
    WeightConcentration, WeightPriorType,
};
use nalgebra::{DMatrix, DVector};

/// A number, an array or an array of arrays, as scikit-learn's attribute has it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
#[serde(untagged)]
pub enum Values {
    Number(f64),
    List(Vec<f64>),
    Rows(Vec<Vec<f64>>),
}

/// The posterior and priors of a batch variational fit, with scikit-learn's names,
/// meanings and shapes (`weight_concentration_`, `mean_precision_`,
/// `degrees_of_freedom_`, and the `*_prior_` attributes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct BayesianInfo {
    #[bincode(with_serde)]
    pub weight_concentration_prior_type: WeightPriorType,
    /// Two arrays of K for the Dirichlet process, one for the distribution.
    pub weight_concentration: Values,
    pub mean_precision: Vec<f64>,
    /// K values; one for tied covariances.
    pub degrees_of_freedom: Values,
    pub weight_concentration_prior: f64,
    pub mean_precision_prior: f64,
    pub mean_prior: Vec<f64>,
    pub degrees_of_freedom_prior: f64,
    /// Full and tied `[d][d]`, diag `[d]`, spherical a number.
    pub covariance_prior: Values,
}

/// A component counts towards the effective number above this share of the weight.
pub const EFFECTIVE_WEIGHT: f64 = 0.01;

impl BayesianInfo {
    pub fn new(posterior: &Posterior, prior: &VariationalPrior) -> Self {
        let list = |v: &nalgebra::DVector<f64>| v.iter().copied().collect::<Vec<f64>>();
        let weight_concentration = match &posterior.weight_concentration {
            WeightConcentration::Process { a, b } => Values::Rows(vec![list(a), list(b)]),
            WeightConcentration::Distribution(alpha) => Values::List(list(alpha)),
        };
        let dof = &posterior.degrees_of_freedom;
        let degrees_of_freedom = match posterior.mixture().covariance_type() {
            CovarianceType::Tied => Values::Number(dof[0]),
            _ => Values::List(list(dof)),
        };
        let covariance_prior = match &prior.covariance {
            CovariancePrior::Matrix(m) => {
                Values::Rows(m.row_iter().map(|r| r.iter().copied().collect()).collect())
            }
            CovariancePrior::Diagonal(v) => Values::List(list(v)),
            CovariancePrior::Scalar(s) => Values::Number(*s),
        };
        Self {
            weight_concentration_prior_type: prior.weight_concentration_prior_type,
            weight_concentration,
            mean_precision: list(&posterior.mean_precision),
            degrees_of_freedom,
            weight_concentration_prior: prior.weight_concentration,
            mean_precision_prior: prior.mean_precision,
            mean_prior: list(&prior.mean),
            degrees_of_freedom_prior: prior.degrees_of_freedom,
            covariance_prior,
        }
    }
}

impl BayesianInfo {
    /// The posterior this object and the file's plug-in `mixture` describe.
    pub fn posterior(&self, mixture: GaussianMixture) -> Result<Posterior, ModelError> {
        let k = mixture.n_components();
        let vector = |v: &[f64]| DVector::from_column_slice(v);
        let bad =
            |what: &str| ModelError::InvalidShape(format!("bayesian.{what} has the wrong shape"));
        let weight_concentration = match (
            &self.weight_concentration,
            self.weight_concentration_prior_type,
        ) {
            (Values::Rows(r), WeightPriorType::DirichletProcess) if r.len() == 2 => {
                WeightConcentration::Process {
                    a: vector(&r[0]),
                    b: vector(&r[1]),
                }
            }
            (Values::List(v), WeightPriorType::DirichletDistribution) => {
                WeightConcentration::Distribution(vector(v))
            }
            _ => return Err(bad("weight_concentration")),
        };
        let degrees_of_freedom = match &self.degrees_of_freedom {
            Values::Number(nu) => DVector::from_element(k, *nu),
            Values::List(v) => vector(v),
            Values::Rows(_) => return Err(bad("degrees_of_freedom")),
        };
        Posterior::from_parts(
            weight_concentration,
            vector(&self.mean_precision),
            degrees_of_freedom,
            mixture,
        )
    }

    /// The priors the fit used.
    pub fn prior(&self) -> Result<VariationalPrior, ModelError> {
        let covariance = match &self.covariance_prior {
            Values::Number(s) => CovariancePrior::Scalar(*s),
            Values::List(v) => CovariancePrior::Diagonal(DVector::from_column_slice(v)),
            Values::Rows(r) => {
                let d = r.len();
                if r.iter().any(|row| row.len() != d) {
                    return Err(ModelError::InvalidShape(
                        "bayesian.covariance_prior is not square".into(),
                    ));
                }
                CovariancePrior::Matrix(DMatrix::from_fn(d, d, |i, j| r[i][j]))
            }
        };
        Ok(VariationalPrior {
            weight_concentration_prior_type: self.weight_concentration_prior_type,
            weight_concentration: self.weight_concentration_prior,
            mean_precision: self.mean_precision_prior,
            mean: DVector::from_column_slice(&self.mean_prior),
            degrees_of_freedom: self.degrees_of_freedom_prior,
            covariance,
        })
    }
}

/// The online estimator's variational settings and state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct OnlineVariationalInfo {
    #[bincode(with_serde)]
    pub settings: OnlineVariational,
    /// Live components when the file was written.
    pub effective_components: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[bincode(with_serde)]
    pub state: Option<VariationalState>,
}

/// The optional parts variational inference adds to a model file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Extensions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bayesian: Option<BayesianInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variational: Option<OnlineVariationalInfo>,
    /// A file source's identity at the snapshot's offset (`positions.file`), so a
    /// replaced file is not resumed at another file's offset. Last in the binary
    /// section, written only when present: earlier files keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<FileIdentity>,
    /// A consumer-group member's state (a snapshot of `run` with a state topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupInfo>,
}

impl Extensions {
    pub fn is_empty(&self) -> bool {
        self.bayesian.is_none()
            && self.variational.is_none()
            && self.source_file.is_none()
            && self.group.is_none()
    }

    /// Records the online estimator's variational settings, the number of live
    /// components and the state if given (nothing under EM).
    pub fn record_online(
        &mut self,
        settings: &OnlineSettings,
        live: usize,
        state: Option<&OnlineState>,
    ) {
        if settings.inference != Inference::Variational {
            return;
        }
        self.variational = Some(OnlineVariationalInfo {
            settings: settings.variational.clone(),
            effective_components: live as u64,
            state: state.and_then(|s| s.variational.clone()),
        });
    }

    /// Puts back what [`Extensions::record_online`] took from the settings.
    pub fn restore_settings(&self, settings: &mut OnlineSettings) {
        if let Some(v) = &self.variational {
            settings.inference = Inference::Variational;
            settings.variational = v.settings.clone();
        }
    }

    /// Puts back what [`Extensions::record_online`] took from the state.
    pub fn restore_state(&self, state: &mut OnlineState) {
        if let Some(v) = &self.variational {
            state.variational = v.state.clone();
        }
    }
}

impl Encode for Extensions {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        if self.is_empty() {
            return Ok(());
        }
        self.bayesian.encode(encoder)?;
        self.variational.encode(encoder)?;
        // Later sections, only when present: files without them keep their bytes. A
        // group section needs the (possibly empty) file identity before it.
        if self.source_file.is_some() || self.group.is_some() {
            self.source_file.encode(encoder)?;
        }
        if self.group.is_some() {
            self.group.encode(encoder)?;
        }
        Ok(())
    }
}

impl<Context> Decode<Context> for Extensions {
    /// Decoding is from a slice (`ModelFile::from_bytes`), whose reader can tell that
    /// no bytes remain: then the file predates the section.
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        if decoder.reader().peek_read(1).is_none() {
            return Ok(Self::default());
        }
        let bayesian = Option::decode(decoder)?;
        let variational = Option::decode(decoder)?;
        // Each later section is read only when bytes remain (written by builds that
        // had something to record there).
        let source_file = if decoder.reader().peek_read(1).is_some() {
            Option::decode(decoder)?
        } else {
            None
        };
        let group = if decoder.reader().peek_read(1).is_some() {
            Option::decode(decoder)?
        } else {
            None
        };
        Ok(Self {
            bayesian,
            variational,
            source_file,
            group,
        })
    }
}

bincode::impl_borrow_decode!(Extensions);

#[cfg(test)]
mod posterior_tests {
    use super::*;
    use gmm_model::{fit_variational, points_from_rows, VariationalSettings};

    /// A fit's `bayesian` object gives back its posterior and priors exactly.
    #[test]
    fn the_bayesian_object_gives_back_the_posterior_and_priors() {
        let flat: Vec<f64> = (0..150)
            .map(|i| ((i * 37 % 23) as f64) * 0.3 + (i % 3) as f64 * 7.0)
            .collect();
        let x = points_from_rows(&flat, 3).expect("points");
        for kind in [
            WeightPriorType::DirichletProcess,
            WeightPriorType::DirichletDistribution,
        ] {
            for t in CovarianceType::ALL {
                let mut settings = VariationalSettings::new(3, kind);
                settings.em.covariance_type = t;
                let report = fit_variational(x, &settings, &mut |_| {}).expect("fit");
                let info = BayesianInfo::new(&report.posterior, &report.prior);
                let back = info
                    .posterior(report.posterior.mixture().clone())
                    .expect("posterior");
                assert_eq!(
                    back.weight_concentration,
                    report.posterior.weight_concentration
                );
                assert_eq!(back.mean_precision, report.posterior.mean_precision);
                assert_eq!(back.degrees_of_freedom, report.posterior.degrees_of_freedom);
                assert_eq!(info.prior().expect("prior"), report.prior, "{kind} {t}");
            }
        }
    }
}
