"""``BayesianGaussianMixture``: scikit-learn's variational Bayesian mixture, fitted
by gmm-stream's variational inference (the same as ``gmm-stream fit --bayesian``)."""

import json

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.mixture import BayesianGaussianMixture as _SkBayesianGaussianMixture
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _core
from ._batch import BatchFitMixin
from ._gaussian_mixture import _Progress, GaussianMixture
from ._mixture import MixtureMixin, updated_at, write_atomically
from ._validation import DTYPES, seed_of, too_few_samples


class BayesianGaussianMixture(BatchFitMixin, MixtureMixin, DensityMixin, BaseEstimator):
    """Variational Bayesian Gaussian mixture, as scikit-learn's
    ``BayesianGaussianMixture``.

    The parameters, fitted attributes and methods are scikit-learn's: a
    Dirichlet-process or Dirichlet-distribution prior on the weights, a
    Gaussian-Wishart prior on each component, coordinate ascent on the lower bound
    (a total over the samples). From the same initial responsibilities the posterior
    agrees with scikit-learn's to 1e-8. ``predict``, ``predict_proba`` and
    ``score_samples`` are scikit-learn's variational ones (expected log-weights
    and precisions); ``sample`` draws from the plug-in mixture of ``weights_``,
    ``means_`` and ``covariances_``, which is also what the model file holds and
    what ``gmm-stream score`` scores.

    ``fit(X, init_model=M)`` starts from the responsibilities of an E-step under
    the fitted mixture ``M`` (a ``GaussianMixture`` of this package or of
    scikit-learn), as ``gmm-stream fit --bayesian --init-model``. ``warm_start``
    starts the next fit from the current posterior's responsibilities.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_,
    converged_, n_iter_, lower_bound_, lower_bounds_, weight_concentration_prior_,
    weight_concentration_, mean_precision_prior_, mean_precision_, mean_prior_,
    degrees_of_freedom_prior_, degrees_of_freedom_, covariance_prior_,
    n_features_in_
        As scikit-learn's.
    """

    _parameter_constraints = dict(_SkBayesianGaussianMixture._parameter_constraints)

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    def fit(self, X, y=None, init_model=None):
        """Fits the variational posterior (``n_init`` times, keeping the best
        lower bound).

        Returns
        -------
        self
        """
        self.fit_predict(X, y, init_model=init_model)
        return self

    def fit_predict(self, X, y=None, init_model=None):
        """Fits, then returns the most responsible component of every sample."""
        self._validate_params()
        X = validate_data(self, X, dtype=DTYPES, ensure_min_samples=2)
        too_few_samples(X.shape[0], self.n_components)
        seed = seed_of(self.random_state)
        start = None
        if init_model is not None:
            start = _start_model(init_model)
        elif self.warm_start and hasattr(self, "means_"):
            start = self._posterior().kernel
        n_init = 1 if start is not None else self.n_init
        progress = _Progress(self) if self.verbose else None
        posterior, converged, n_iter, lower_bound, lower_bounds = _core.fit_bayesian(
            X, self._em_params(n_init), self._prior_params(X.shape[1]), seed, start=start, progress=progress
        )
        if progress is not None:
            progress.finish(None)
        self._record_fit(converged, n_iter, lower_bound, lower_bounds, seed, start is not None)
        self._set_posterior(posterior)
        return posterior.kernel.predict(X)

    def _prior_params(self, n_features):
        def flat(v):
            return None if v is None else [float(x) for x in np.ravel(np.asarray(v, dtype=np.float64))]

        mean_prior = flat(self.mean_prior)
        if mean_prior is not None and len(mean_prior) != n_features:
            raise ValueError(
                "The parameter 'means' should have the shape of (%d,), but got %s"
                % (n_features, np.shape(self.mean_prior))
            )
        return {
            "weight_concentration_prior_type": self.weight_concentration_prior_type,
            "weight_concentration_prior": self.weight_concentration_prior,
            "mean_precision_prior": self.mean_precision_prior,
            "mean_prior": mean_prior,
            "degrees_of_freedom_prior": self.degrees_of_freedom_prior,
            "covariance_prior": flat(self.covariance_prior),
        }

    def _set_posterior(self, posterior):
        """The fitted attributes, scikit-learn's names and shapes, from a core
        posterior."""
        self._set_mixture(posterior.mixture)
        a = json.loads(posterior.attributes_json())
        if self.weight_concentration_prior_type == "dirichlet_process":
            first, second = a["weight_concentration"]
            self.weight_concentration_ = (np.array(first), np.array(second))
        else:
            self.weight_concentration_ = np.array(a["weight_concentration"])
        self.mean_precision_ = np.array(a["mean_precision"])
        dof = a["degrees_of_freedom"]
        self.degrees_of_freedom_ = float(dof) if np.isscalar(dof) else np.array(dof)
        self.weight_concentration_prior_ = a["weight_concentration_prior"]
        self.mean_precision_prior_ = a["mean_precision_prior"]
        self.mean_prior_ = np.array(a["mean_prior"])
        self.degrees_of_freedom_prior_ = a["degrees_of_freedom_prior"]
        cov = a["covariance_prior"]
        self.covariance_prior_ = float(cov) if np.isscalar(cov) else np.array(cov)

    def _posterior(self):
        """The core posterior of the fitted attributes."""
        self._check_fitted()
        concentration = self.weight_concentration_
        if isinstance(concentration, tuple):
            concentration = np.concatenate(concentration)
        return _core.Posterior(
            super()._core_mixture(),
            self.weight_concentration_prior_type,
            np.asarray(concentration, dtype=np.float64),
            np.asarray(self.mean_precision_, dtype=np.float64),
            np.atleast_1d(np.asarray(self.degrees_of_freedom_, dtype=np.float64)),
            float(self.weight_concentration_prior_),
            float(self.mean_precision_prior_),
            np.asarray(self.mean_prior_, dtype=np.float64),
            float(self.degrees_of_freedom_prior_),
            np.atleast_1d(np.asarray(self.covariance_prior_, dtype=np.float64)),
        )

    def _core_mixture(self):
        # Scores, responsibilities and predictions are the variational E-step's.
        return self._posterior().kernel

    def _sampled_mixture(self):
        # scikit-learn samples the plug-in mixture of weights_, means_, covariances_.
        return self._posterior().mixture

    def save(self, path):
        """Writes the model file (with its ``bayesian`` object) that
        ``gmm-stream`` and :func:`gmm_stream.load` read."""
        data = self._posterior().file_bytes(str(path), updated_at(), self._fit_info())
        write_atomically(path, data)

    def to_sklearn(self):
        """The same fitted model as a ``sklearn.mixture.BayesianGaussianMixture``."""
        check_is_fitted(self)
        sk = _SkBayesianGaussianMixture(**self.get_params())
        for name in _FITTED:
            if hasattr(self, name):
                value = getattr(self, name)
                setattr(sk, name, tuple(np.array(v) for v in value) if isinstance(value, tuple) else value)
        return sk

    @classmethod
    def _from_file(cls, loaded, meta):
        estimator = meta.get("estimator") or {}
        bayes = meta["bayesian"]
        params = dict(
            n_components=meta["n_components"],
            covariance_type=meta["covariance_type"],
            weight_concentration_prior_type=bayes["weight_concentration_prior_type"],
            weight_concentration_prior=bayes["weight_concentration_prior"],
            mean_precision_prior=bayes["mean_precision_prior"],
            mean_prior=np.array(bayes["mean_prior"]),
            degrees_of_freedom_prior=bayes["degrees_of_freedom_prior"],
            covariance_prior=bayes["covariance_prior"],
        )
        params.update(cls._params_of_file(estimator))
        if isinstance(params["covariance_prior"], list):
            params["covariance_prior"] = np.array(params["covariance_prior"])
        est = cls(**params)
        est._set_posterior(loaded.posterior())
        est.n_features_in_ = meta["n_features"]
        est._restore_fit(estimator)
        return est

    @classmethod
    def _from_sklearn(cls, sk):
        check_is_fitted(sk)
        est = cls(**{k: v for k, v in sk.get_params().items() if k in cls._get_param_names()})
        for name in _FITTED:
            if hasattr(sk, name):
                setattr(est, name, getattr(sk, name))
        if not hasattr(sk, "covariances_"):
            raise ValueError("the scikit-learn estimator has no covariances_")
        # The derived parameters as this package computes them.
        est._set_mixture(est._posterior().mixture)
        return est


_FITTED = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "converged_",
    "n_iter_",
    "lower_bound_",
    "lower_bounds_",
    "weight_concentration_prior_",
    "weight_concentration_",
    "mean_precision_prior_",
    "mean_precision_",
    "mean_prior_",
    "degrees_of_freedom_prior_",
    "degrees_of_freedom_",
    "covariance_prior_",
    "n_features_in_",
    "feature_names_in_",
)


def _start_model(model):
    """The core mixture of a fitted GaussianMixture (this package's or
    scikit-learn's), whose E-step gives the initial responsibilities."""
    if isinstance(model, GaussianMixture):
        return model._core_mixture()
    from ._gaussian_mixture import _core_mixture_of

    return _core_mixture_of(model)
