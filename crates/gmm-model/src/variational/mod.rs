//! Variational Bayesian Gaussian mixtures with scikit-learn's semantics
//! (`BayesianGaussianMixture`): a Dirichlet-process or Dirichlet-distribution prior
//! on the weights and a Gaussian-Wishart prior on each component, fitted by
//! coordinate ascent on the lower bound. Components the data do not support keep
//! their prior weight, so K is an upper bound and the posterior chooses how many
//! components to use.
//!
//! One idea per file: `prior` (the priors and their defaults), `posterior` (the
//! update from sufficient statistics), `expectations` (what the E-step needs: the
//! EM kernel with other per-component constants), `bound` (the lower bound),
//! `fit` (the batch loop), `special` (ψ and ln Γ).

mod bound;
mod expectations;
mod fit;
mod posterior;
mod prior;
mod special;

pub use fit::{fit_variational, variational_step, VariationalReport, VariationalSettings};
pub use posterior::{Posterior, WeightConcentration};
pub use prior::{CovariancePrior, PriorChoices, VariationalPrior, WeightPriorType};
