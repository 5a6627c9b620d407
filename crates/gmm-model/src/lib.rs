//! The numerical core: Gaussian mixtures, their sufficient statistics, batch EM and
//! online EM, and variational Bayesian mixtures (batch, with scikit-learn's
//! semantics, and online, choosing K on the stream). Pure computation: no I/O, no
//! async, no clocks (time enters as an argument), so it can be read, tested and
//! benchmarked on its own.
//!
//! Conventions: points are the columns of a d×n matrix ([`Points`]); K is the
//! number of components; responsibilities are K×n.

pub mod anomaly;
mod block_stats;
mod checked_serde;
mod covariance;
mod drift;
mod em;
mod error;
mod estep;
mod far;
mod init;
mod kernels;
mod linalg;
mod mixture;
mod mstep;
mod online;
mod schedule;
mod scoring;
// The one module allowed `unsafe`: AVX2 intrinsics, with its safety argument inside.
#[allow(unsafe_code)]
mod simd;
mod stats;
mod variational;

pub use covariance::{CovarianceType, Covariances, Factors as PrecisionFactors};
pub use drift::{BatchLevel, DriftSettings, DriftState};
pub use em::{em_step, fit, resume, EmSettings, FitReport, Iteration, Start};
pub use error::{ModelError, Result};
pub use estep::{most_responsible, EvalRequest, Evaluation};
pub use far::{first_out_of_range, gross_outliers, FAR_SIGMAS, MAX_ABS_COORDINATE};
pub use init::{initial_stats, kmeans, kmeans_plusplus, InitMethod, KMeansOptions, KMeansResult};
pub use linalg::{points_from_rows, Points};
pub use mixture::GaussianMixture;
pub use mstep::{m_step, Prior};
/// Online estimation shared by the members of a consumer group.
pub use online::group;
pub use online::{
    Absorbed, BatchOutcome, Inference, OnlineEm, OnlineSettings, OnlineState, OnlineVariational,
    Scored, StreamEstimator, StructureChanges, VariationalState,
};
pub use schedule::{decay_factor, stepwise_gamma, HalfLifeUnit, Schedule};
pub use stats::{Scatter, SufficientStats};
pub use variational::{
    fit_variational, variational_step, CovariancePrior, Posterior, PriorChoices, VariationalPrior,
    VariationalReport, VariationalSettings, WeightConcentration, WeightPriorType,
};
