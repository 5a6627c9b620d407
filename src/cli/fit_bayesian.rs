//! `fit --bayesian`: the variational posterior of a Bayesian mixture, as
//! scikit-learn's `BayesianGaussianMixture`, written as a model file whose
//! `weights`, `means`, `covariances` are its `weights_`, `means_`, `covariances_`
//! and whose `bayesian` object holds the rest of the posterior and the priors.

use gmm_io::BayesianInfo;
use gmm_model::{
    fit_variational, CovariancePrior, CovarianceType, EmSettings, FitReport, Points, PriorChoices,
    VariationalReport, VariationalSettings, WeightPriorType,
};
use nalgebra::{DMatrix, DVector};

use super::error::CliError;
use super::progress::FitProgress;

/// The flags of a Bayesian fit (defaults as scikit-learn's).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Bayesian fit (variational inference)")]
pub struct BayesianArgs {
    /// Fit the variational posterior of a Bayesian mixture (scikit-learn's
    /// BayesianGaussianMixture) with this prior on the weights; --components is then
    /// the largest K, and the tolerance applies to the lower bound (a total over the
    /// points)
    #[arg(long, value_name = "PRIOR", value_parser = weight_prior())]
    pub bayesian: Option<WeightPriorType>,

    /// Concentration of the weight prior (gamma of the process, alpha_0 of the
    /// distribution): small values empty the components the data do not need
    /// [default: 1/K]
    #[arg(long, value_name = "F", requires = "bayesian", value_parser = positive_number)]
    pub weight_concentration_prior: Option<f64>,

    /// Precision of the mean prior (beta_0), in points [default: 1]
    #[arg(long, value_name = "F", requires = "bayesian", value_parser = positive_number)]
    pub mean_precision_prior: Option<f64>,

    /// Mean prior (m_0): d comma-separated numbers [default: the data mean]
    #[arg(long, value_name = "X1,X2,...", requires = "bayesian", value_delimiter = ',',
          allow_negative_numbers = true, value_parser = finite_number)]
    pub mean_prior: Option<Vec<f64>>,

    /// Degrees of freedom of the Wishart prior (nu_0), above d - 1 [default: d]
    #[arg(long, value_name = "F", requires = "bayesian", value_parser = positive_number)]
    pub degrees_of_freedom_prior: Option<f64>,

    /// Covariance prior (the inverse of W_0), comma-separated: d x d numbers row by
    /// row for full and tied, d variances for diag, one for spherical [default: the
    /// data covariance, its diagonal or its mean variance]
    #[arg(long, value_name = "V1,V2,...", requires = "bayesian", value_delimiter = ',',
          allow_negative_numbers = true, value_parser = finite_number)]
    pub covariance_prior: Option<Vec<f64>>,
}

fn weight_prior() -> impl clap::builder::TypedValueParser<Value = WeightPriorType> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["dirichlet-process", "dirichlet-distribution"])
        .try_map(|s| s.parse::<WeightPriorType>())
}

fn finite_number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err("must be finite".to_owned()),
        Err(_) => Err("not a number".to_owned()),
    }
}

fn positive_number(s: &str) -> Result<f64, String> {
    match finite_number(s)? {
        x if x > 0.0 => Ok(x),
        _ => Err("must be a number > 0".to_owned()),
    }
}

impl BayesianArgs {
    /// The prior choices, with the shapes of the mean and covariance priors checked
    /// against d and the covariance type.
    fn choices(&self, cov_type: CovarianceType, d: usize) -> Result<PriorChoices, CliError> {
        let mean = match &self.mean_prior {
            Some(v) if v.len() != d => {
                return Err(CliError::bad_input_msg(format!(
                    "--mean-prior has {} numbers, the data {d} coordinates",
                    v.len()
                )))
            }
            Some(v) => Some(DVector::from_column_slice(v)),
            None => None,
        };
        let covariance = match &self.covariance_prior {
            Some(v) => Some(covariance_prior(cov_type, d, v)?),
            None => None,
        };
        Ok(PriorChoices {
            weight_concentration: self.weight_concentration_prior,
            mean_precision: self.mean_precision_prior,
            mean,
            degrees_of_freedom: self.degrees_of_freedom_prior,
            covariance,
        })
    }
}

fn covariance_prior(
    cov_type: CovarianceType,
    d: usize,
    v: &[f64],
) -> Result<CovariancePrior, CliError> {
    let want = match cov_type {
        CovarianceType::Full | CovarianceType::Tied => d * d,
        CovarianceType::Diag => d,
        CovarianceType::Spherical => 1,
    };
    if v.len() != want {
        return Err(CliError::bad_input_msg(format!(
            "--covariance-prior has {} numbers; {cov_type} covariances of {d} features take {want}",
            v.len()
        )));
    }
    Ok(match cov_type {
        CovarianceType::Full | CovarianceType::Tied => {
            CovariancePrior::Matrix(DMatrix::from_row_slice(d, d, v))
        }
        CovarianceType::Diag => CovariancePrior::Diagonal(DVector::from_column_slice(v)),
        CovarianceType::Spherical => CovariancePrior::Scalar(v[0]),
    })
}

/// Runs the variational fit; the report, as EM's for the model file, and the
/// `bayesian` object.
pub fn run(
    args: &BayesianArgs,
    kind: WeightPriorType,
    em: &EmSettings,
    quiet: bool,
    x: Points<'_>,
    name: &str,
) -> Result<(FitReport, BayesianInfo), CliError> {
    let settings = VariationalSettings {
        em: em.clone(),
        weight_prior: kind,
        priors: args.choices(em.covariance_type, x.nrows())?,
    };
    let mut progress = FitProgress::new(quiet, em.n_init, em.max_iter).of_lower_bound();
    let report = fit_variational(x, &settings, &mut |it| progress.iteration(it))
        .map_err(|e| CliError::bad_input_msg(format!("{name}: {e}")))?;
    let info = BayesianInfo::new(&report.posterior, &report.prior);
    let fit = as_fit_report(report);
    progress.finished(&fit, em.max_iter, x.ncols());
    Ok((fit, info))
}

fn as_fit_report(report: VariationalReport) -> FitReport {
    FitReport {
        model: report.posterior.into_mixture(),
        converged: report.converged,
        n_iter: report.n_iter,
        lower_bound: report.lower_bound,
        history: report.history,
    }
}
