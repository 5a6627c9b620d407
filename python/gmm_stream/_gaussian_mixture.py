"""``GaussianMixture``: scikit-learn's estimator, fitted by gmm-stream's exact
batch EM (the same as ``gmm-stream fit``)."""

import math

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.mixture import GaussianMixture as _SkGaussianMixture
from sklearn.utils.validation import validate_data

from . import _core
from ._batch import BatchFitMixin
from ._mixture import CriteriaMixin, MixtureMixin, updated_at, write_atomically
from ._parameters import covariances_from_precisions
from ._validation import (
    DTYPES,
    check_means,
    check_precisions,
    check_weights,
    seed_of,
    too_few_samples,
)

class GaussianMixture(BatchFitMixin, MixtureMixin, CriteriaMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM, as scikit-learn's ``GaussianMixture``.

    The parameters, fitted attributes and methods are scikit-learn's. The same
    E-step, M-step (with ``reg_covar``) and stopping rule run in Rust: started from
    the same parameters, the fitted parameters agree with scikit-learn's to 1e-8
    relative. ``init_params`` names the same methods, implemented by gmm-stream (so
    a fit from a k-means start is not scikit-learn's draw); an int
    ``random_state`` is the seed of ``gmm-stream fit --seed``.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        EM stops when the mean log-likelihood per sample changes by less.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
    n_init : int, default=1
        Initialisations; the one with the best final lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weights_init, means_init, precisions_init : array-like, default=None
        Initial weights, means and precisions; where one is given, it replaces
        what the initialisation method would have started from.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
        Refit from the current parameters (one initialisation; the first change is
        measured from the previous ``lower_bound_``).
    verbose : int, default=0
    verbose_interval : int, default=10

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_,
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_
        As scikit-learn's.
    """

    _parameter_constraints = dict(_SkGaussianMixture._parameter_constraints)

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
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
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    def fit(self, X, y=None):
        """Estimates the parameters by EM (``n_init`` times, keeping the best).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), float64 or float32, C or
            Fortran order (read in place).
        y : Ignored

        Returns
        -------
        self
        """
        self.fit_predict(X, y)
        return self

    def fit_predict(self, X, y=None):
        """Fits, then returns the most responsible component of every sample
        (consistent with ``fit(X).predict(X)``)."""
        self._validate_params()
        X = validate_data(self, X, dtype=DTYPES, ensure_min_samples=2)
        too_few_samples(X.shape[0], self.n_components)
        inits = self._checked_inits(X.shape[1])
        seed = seed_of(self.random_state)
        warm = self.warm_start and hasattr(self, "means_")
        progress = _Progress(self) if self.verbose else None
        if warm:
            result = self._run(
                X,
                seed,
                n_init=1,
                start=self._core_mixture(),
                previous_lower_bound=getattr(self, "lower_bound_", -math.inf),
                progress=progress,
            )
        elif not any(v is not None for v in inits.values()):
            result = self._run(X, seed, n_init=self.n_init, progress=progress)
        else:
            result = self._run_from_inits(X, seed, inits, progress)
        if progress is not None:
            progress.finish(result)
        mixture, converged, n_iter, lower_bound, lower_bounds = result
        from_model = warm or any(v is not None for v in inits.values())
        self._record_fit(converged, n_iter, lower_bound, lower_bounds, seed, from_model)
        self._set_mixture(mixture)
        return mixture.predict(X)

    def _checked_inits(self, n_features):
        k = self.n_components
        return {
            "weights": None if self.weights_init is None else check_weights(self.weights_init, k),
            "means": None
            if self.means_init is None
            else check_means(self.means_init, k, n_features),
            "precisions": None
            if self.precisions_init is None
            else check_precisions(self.precisions_init, self.covariance_type, k, n_features),
        }

    def _run(self, X, seed, n_init, start=None, previous_lower_bound=None, progress=None):
        return _core.fit_em(
            X,
            self._em_params(n_init),
            seed,
            start=start,
            previous_lower_bound=previous_lower_bound,
            progress=progress,
        )

    def _run_from_inits(self, X, seed, inits, progress):
        """Starts where the given initial parameters say, the rest from the
        initialisation method (as scikit-learn: its responsibilities, then one
        M-step). All three given: one run, every initialisation would be it."""
        complete = all(v is not None for v in inits.values())
        best = None
        for i in range(1 if complete else self.n_init):
            init_seed = (seed + i) % 2**64
            if complete:
                weights, means, covariances = inits["weights"], inits["means"], None
            else:
                base = _core.initial_model(X, self._em_params(1), init_seed)
                weights, means, covariances = base.weights, base.means, base.covariances
            if inits["weights"] is not None:
                weights = inits["weights"]
            if inits["means"] is not None:
                means = inits["means"]
            if inits["precisions"] is not None:
                covariances = covariances_from_precisions(inits["precisions"], self.covariance_type)
            start = _core.Mixture(self.covariance_type, weights, means, covariances)
            if progress is not None:
                progress.init = i
            run = self._run(X, init_seed, n_init=1, start=start, progress=progress)
            if best is None or run[3] > best[3]:
                best = run
        return best

    def save(self, path):
        """Writes the model file (JSON when ``path`` ends in ``.json``, else the
        binary form) that ``gmm-stream score``, ``sample``, ``inspect``, ``plot``,
        ``fit --init-model`` and :func:`gmm_stream.load` read."""
        data = _core.batch_model_file(self._core_mixture(), str(path), updated_at(), self._fit_info())
        write_atomically(path, data)

    def to_sklearn(self):
        """The same fitted model as a ``sklearn.mixture.GaussianMixture``."""
        sk = self._to_sklearn_mixture(
            tol=self.tol,
            max_iter=self.max_iter,
            n_init=self.n_init,
            init_params=self.init_params,
            warm_start=self.warm_start,
        )
        for name in ("converged_", "n_iter_", "lower_bound_", "lower_bounds_"):
            if hasattr(self, name):
                setattr(sk, name, getattr(self, name))
        return sk

    @classmethod
    def _from_file(cls, loaded, meta):
        """An estimator from a model file that is not an online one."""
        estimator = meta.get("estimator") or {}
        est = cls(
            n_components=meta["n_components"],
            covariance_type=meta["covariance_type"],
            **cls._params_of_file(estimator),
        )
        est._set_mixture(loaded.mixture())
        est.n_features_in_ = meta["n_features"]
        est._restore_fit(estimator)
        return est

    @classmethod
    def _from_sklearn(cls, sk):
        params = {
            name: value
            for name, value in sk.get_params().items()
            if name in cls._get_param_names()
        }
        est = cls(**params)
        est._set_mixture(_core_mixture_of(sk))
        for name in ("converged_", "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_", "feature_names_in_"):
            if hasattr(sk, name):
                setattr(est, name, getattr(sk, name))
        return est


def _core_mixture_of(sk):
    """The core mixture of a fitted scikit-learn mixture."""
    from sklearn.utils.validation import check_is_fitted

    from ._parameters import covariances_from_precision_cholesky

    check_is_fitted(sk)
    covariances = getattr(sk, "covariances_", None)
    if covariances is None:
        covariances = covariances_from_precision_cholesky(sk.precisions_cholesky_, sk.covariance_type)
    return _core.Mixture(
        sk.covariance_type,
        np.asarray(sk.weights_, dtype=np.float64),
        np.asarray(sk.means_, dtype=np.float64),
        np.asarray(covariances, dtype=np.float64),
    )


class _Progress:
    """scikit-learn's ``verbose`` output, fed by the core at every iteration."""

    def __init__(self, est):
        import time

        self._time = time.time
        self.est = est
        self.init = None
        self._shown = None
        self._last_change = None
        self._started = self._time()
        self._iter_time = self._started

    def __call__(self, init, iteration, lower_bound, change):
        est = self.est
        index = self.init if self.init is not None else init
        if index != self._shown:
            if self._shown is not None:
                self._end(self._last_lower_bound, abs(self._last_change) < est.tol)
            print(f"Initialization {index}")
            self._shown = index
            self._started = self._iter_time = self._time()
        if iteration % est.verbose_interval == 0:
            if est.verbose == 1:
                print(f"  Iteration {iteration}")
            else:
                now = self._time()
                print(
                    f"  Iteration {iteration}\t time lapse {now - self._iter_time:.5f}s\t "
                    f"ll change {change:.5f}"
                )
                self._iter_time = now
        self._last_change = change
        self._last_lower_bound = lower_bound

    def _end(self, lower_bound, converged):
        if self.est.verbose == 1:
            print(f"Initialization converged: {converged}")
        else:
            print(
                f"Initialization converged: {converged}\t time lapse "
                f"{self._time() - self._started:.5f}s\t lower bound {lower_bound:.5f}."
            )

    def finish(self, result):
        if self._shown is not None:
            self._end(self._last_lower_bound, abs(self._last_change) < self.est.tol)
