//! `gmm-stream fit`: batch EM on a finite data set, with scikit-learn's semantics,
//! written to a model file.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::SystemTime;

use gmm_io::{BatchInfo, EstimatorInfo, ModelFile};
use gmm_model::{
    fit, points_from_rows, CovarianceType, EmSettings, FitReport, GaussianMixture, InitMethod,
    ModelError, Points, Start,
};

use super::error::CliError;
use super::fit_bayesian::{self, BayesianArgs};
use super::input::{explain_dim, report_skipped, InputArgs};
use super::model_file;
use super::output::AtomicFile;
use super::progress::FitProgress;
use super::values;

const EXAMPLES: &str = "\
Examples:
  gmm-stream fit --input points.csv --components 3 --output model.json
  gmm-stream fit -i points.f64 --dim 8 -k 5 --covariance-type diag --n-init 4 -o model.bin
  gmm-stream fit -i points.csv --init-model start.json --tol 0 --max-iter 10 -o model.json
  gmm-stream fit -i points.csv --choose-components 1..10 --n-init 3 -o model.json";

/// Fit a Gaussian mixture by batch EM and write a model file
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Fit a Gaussian mixture to a finite data set by batch EM and write a model file.\n\n\
        The estimator is scikit-learn's GaussianMixture: the same initialisations, E-step, \
        M-step with reg_covar and stopping rule. Progress (iteration, mean log-likelihood, \
        change) goes to stderr unless --quiet: a bar per initialisation when stderr is a \
        terminal, else one line per iteration. The model is written atomically: JSON when \
        the output path ends in .json, the checksummed binary form otherwise.\n\n\
        Exit codes: 0 success; 2 bad usage or bad input (a bad point, a missing file, an \
        incompatible --init-model, an output directory that does not exist); 1 any other \
        failure (e.g. the output file cannot be written).",
    after_help = EXAMPLES
)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Number of mixture components K [required unless --init-model or
    /// --choose-components gives it]
    #[arg(long, short = 'k', value_name = "K", value_parser = values::positive,
          required_unless_present_any = ["init_model", "choose_components"])]
    pub components: Option<usize>,

    /// Fit every K from MIN to MAX and keep the model with the lowest BIC on the data
    /// (each K's BIC and AIC go to stderr)
    #[arg(long, value_name = "MIN..MAX", value_parser = values::count_range,
          conflicts_with_all = ["components", "init_model", "bayesian"])]
    pub choose_components: Option<RangeInclusive<usize>>,

    /// Where to write the model: JSON if the name ends in .json, else binary
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: PathBuf,

    /// Covariance parameterisation [default: full, or that of --init-model]
    #[arg(long, value_name = "TYPE", value_parser = values::covariance_type())]
    pub covariance_type: Option<CovarianceType>,

    /// Maximum number of EM iterations per initialisation (0 only initialises)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_iter: usize,

    /// Stop when the mean log-likelihood per point changes by less than this
    #[arg(long, value_name = "T", default_value_t = 1e-3, value_parser = values::non_negative,
          allow_negative_numbers = true)]
    pub tol: f64,

    /// Added to the diagonal of every covariance
    #[arg(long, value_name = "R", default_value_t = 1e-6, value_parser = values::non_negative,
          allow_negative_numbers = true)]
    pub reg_covar: f64,

    /// Number of initialisations; the run with the best final mean log-likelihood is kept
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = values::positive)]
    pub n_init: usize,

    /// How to start EM [default: kmeans]
    #[arg(long, value_name = "METHOD", value_parser = values::init_method(),
          conflicts_with = "init_model")]
    pub init: Option<InitMethod>,

    /// Start from this model file's weights, means and covariances (K, covariance type
    /// and dimension must match)
    #[arg(long, value_name = "PATH")]
    pub init_model: Option<PathBuf>,

    /// Seed of the random initialisation; the same seed gives the same model
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// No progress lines (warnings and errors are still printed)
    #[arg(long, short = 'q')]
    pub quiet: bool,

    #[command(flatten)]
    pub bayesian: BayesianArgs,
}

pub fn run(args: Args) -> Result<(), CliError> {
    if args.output.as_os_str() == "-" {
        return Err(CliError::bad_input_msg(
            "fit writes a model file: --output must name a file (ending in .json for JSON)",
        ));
    }
    // Created first, so that a bad output path is reported before a long fit.
    let out = AtomicFile::create(&args.output)?;
    let init_model = match &args.init_model {
        Some(path) => Some(model_file::load(path)?.mixture),
        None => None,
    };
    let mut settings = settings(&args, init_model)?;
    // Points are checked against the initial model's dimension as they are read,
    // so that a mismatch names the line.
    let model_name = args.init_model.as_ref().map(|p| p.display().to_string());
    let model_dim = match &settings.start {
        Start::Model(m) => Some(m.n_features()),
        Start::Init(_) => None,
    };
    let model = model_name.as_deref().zip(model_dim);
    if let Some((name, d)) = model {
        args.input.check_against_model(name, d)?;
    }
    let mut reader = args.input.reader(model_dim)?;
    let values = reader.read_to_end().map_err(|e| explain_dim(e, model))?;
    report_skipped(&reader);
    let name = reader.name();
    let x = points_from_rows(&values, reader.dim().unwrap_or(0)).map_err(bad_input(name))?;
    if let Some(kind) = args.bayesian.bayesian {
        let (report, info) =
            fit_bayesian::run(&args.bayesian, kind, &settings, args.quiet, x, name)?;
        let mut file = model_file(&report, &settings, x.ncols());
        file.extensions.bayesian = Some(info);
        return model_file::save(&file, out);
    }
    let report = match &args.choose_components {
        Some(range) => choose_by_bic(&args, &mut settings, range.clone(), x, name)?,
        None => run_em(&args, &settings, x, name)?,
    };
    model_file::save(&model_file(&report, &settings, x.ncols()), out)
}

/// Every failure of EM is about this data under these settings (too few points, a
/// collapsed component): the user's to fix, hence exit 2.
fn bad_input(name: &str) -> impl Fn(ModelError) -> CliError + '_ {
    move |e| CliError::bad_input_msg(format!("{name}: {e}"))
}

fn run_em(
    args: &Args,
    settings: &EmSettings,
    x: Points<'_>,
    name: &str,
) -> Result<FitReport, CliError> {
    let mut progress = FitProgress::new(args.quiet, settings.n_init, settings.max_iter);
    let report = fit(x, settings, &mut |it| progress.iteration(it)).map_err(bad_input(name))?;
    progress.finished(&report, settings.max_iter, x.ncols());
    Ok(report)
}

/// Fits each K of `range` and keeps the fit with the lowest BIC (the first of
/// equals); `settings` is left with the chosen K. A K the data cannot support (more
/// components than points) is skipped with a warning.
fn choose_by_bic(
    args: &Args,
    settings: &mut EmSettings,
    range: RangeInclusive<usize>,
    x: Points<'_>,
    name: &str,
) -> Result<FitReport, CliError> {
    let mut best: Option<(f64, FitReport)> = None;
    let mut last_error = None;
    for k in range {
        settings.n_components = k;
        let report = match run_em(args, settings, x, name) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("gmm-stream: warning: K = {k} skipped: {e}");
                last_error = Some(e);
                continue;
            }
        };
        let bic = report.model.bic(x).map_err(bad_input(name))?;
        if !args.quiet {
            let aic = report.model.aic(x).map_err(bad_input(name))?;
            eprintln!("K = {k}: BIC {bic:.6e}, AIC {aic:.6e}");
        }
        if best.as_ref().is_none_or(|(b, _)| bic < *b) {
            best = Some((bic, report));
        }
    }
    let Some((bic, report)) = best else {
        return Err(last_error.unwrap_or_else(|| CliError::bad_input_msg("no K to fit")));
    };
    settings.n_components = report.model.n_components();
    if !args.quiet {
        eprintln!(
            "chose K = {} (lowest BIC, {bic:.6e})",
            settings.n_components
        );
    }
    Ok(report)
}

/// The EM settings of the command line; K and the covariance type come from
/// `--init-model` when it is given, and must agree with any given explicitly.
fn settings(args: &Args, init_model: Option<GaussianMixture>) -> Result<EmSettings, CliError> {
    let (n_components, covariance_type, start) = match init_model {
        Some(model) => {
            check_init_model(args, &model)?;
            (
                model.n_components(),
                model.covariance_type(),
                Start::Model(model),
            )
        }
        None => (
            args.components
                .or_else(|| args.choose_components.as_ref().map(|r| *r.start()))
                .ok_or_else(|| CliError::bad_input_msg("--components is required"))?,
            args.covariance_type.unwrap_or_default(),
            Start::Init(args.init.unwrap_or_default()),
        ),
    };
    Ok(EmSettings {
        covariance_type,
        max_iter: args.max_iter,
        tol: args.tol,
        reg_covar: args.reg_covar,
        n_init: args.n_init,
        start,
        seed: args.seed,
        ..EmSettings::new(n_components)
    })
}

fn check_init_model(args: &Args, model: &GaussianMixture) -> Result<(), CliError> {
    let name = args
        .init_model
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if let Some(k) = args.components.filter(|&k| k != model.n_components()) {
        return Err(CliError::bad_input_msg(format!(
            "{name}: the initial model has {} components, not the {k} of --components",
            model.n_components()
        )));
    }
    if let Some(t) = args
        .covariance_type
        .filter(|&t| t != model.covariance_type())
    {
        return Err(CliError::bad_input_msg(format!(
            "{name}: the initial model has {} covariances, not the {t} of --covariance-type",
            model.covariance_type()
        )));
    }
    Ok(())
}

/// The model file of a fit: `model_version` counts the M-steps of the kept run,
/// `points_seen` the points it was fitted to.
fn model_file(report: &FitReport, settings: &EmSettings, n_points: usize) -> ModelFile {
    let init = match &settings.start {
        Start::Model(_) => "model".to_owned(),
        Start::Init(method) => method.as_str().to_owned(),
    };
    let info = BatchInfo {
        max_iter: settings.max_iter as u64,
        tol: settings.tol,
        reg_covar: settings.reg_covar,
        n_init: settings.n_init as u64,
        init,
        seed: settings.seed,
        converged: report.converged,
        n_iter: report.n_iter as u64,
        lower_bound: (report.n_iter > 0).then_some(report.lower_bound),
    };
    let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut file = ModelFile::new(&report.model, EstimatorInfo::Batch(info), now);
    file.points_seen = n_points as u64;
    file.model_version = report.n_iter as u64;
    file
}
