"""What every fitted mixture does with points, through the Rust core: scores,
predictions, information criteria, sampling, conversion to scikit-learn, saving."""

import datetime
import os
import tempfile

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _core
from ._parameters import precisions
from ._validation import DTYPES, seed_of


class MixtureMixin:
    """Scoring from the fitted ``weights_``, ``means_`` and ``covariances_``.

    The core mixture is rebuilt from those attributes at every call (a few
    Cholesky factorisations), so what is scored is always what the attributes
    say, as in scikit-learn; rebuilding a mixture from its own parameters gives
    back the same bits.
    """

    def _check_fitted(self):
        check_is_fitted(self)

    def _core_mixture(self):
        self._check_fitted()
        return _core.Mixture(
            self.covariance_type,
            np.asarray(self.weights_, dtype=np.float64),
            np.asarray(self.means_, dtype=np.float64),
            np.asarray(self.covariances_, dtype=np.float64),
        )

    def _set_mixture(self, mixture):
        """Sets the fitted parameters from a core mixture."""
        self.weights_ = mixture.weights
        self.means_ = mixture.means
        self.covariances_ = mixture.covariances
        self.precisions_cholesky_ = mixture.precisions_cholesky
        self.precisions_ = precisions(self.precisions_cholesky_, self.covariance_type)

    def _validate_points(self, X):
        self._check_fitted()
        return validate_data(self, X, reset=False, dtype=DTYPES)

    def score_samples(self, X):
        """Log-density of every sample, ``log p(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        X = self._validate_points(X)
        return self._core_mixture().score_samples(X)

    def score(self, X, y=None):
        """Mean log-likelihood per sample of ``X``."""
        X = self._validate_points(X)
        total, n = self._core_mixture().log_likelihood(X)
        return total / n

    def predict(self, X):
        """The most responsible component of every sample."""
        X = self._validate_points(X)
        return self._core_mixture().predict(X)

    def predict_proba(self, X):
        """Responsibilities: each component's posterior probability for every
        sample, shape (n_samples, n_components)."""
        X = self._validate_points(X)
        return self._core_mixture().predict_proba(X)

    def sample(self, n_samples=1):
        """Draws samples from the fitted mixture.

        With an int ``random_state`` the draw is the same at every call, and the
        same as ``gmm-stream sample --seed`` with that seed.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,), the component of each sample
        """
        self._check_fitted()
        if n_samples < 1:
            raise ValueError(
                "Invalid value for 'n_samples': %d . The sampling requires at "
                "least one sample." % n_samples
            )
        return self._sampled_mixture().sample(int(n_samples), seed_of(self.random_state))

    def _sampled_mixture(self):
        """The mixture ``sample`` draws from."""
        return self._core_mixture()

    def _to_sklearn_mixture(self, **params):
        from sklearn.mixture import GaussianMixture as SkGaussianMixture

        check_is_fitted(self)
        sk = SkGaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            random_state=self.random_state,
            **params,
        )
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
            setattr(sk, name, np.array(getattr(self, name), dtype=np.float64))
        sk.n_features_in_ = self.n_features_in_
        if hasattr(self, "feature_names_in_"):
            sk.feature_names_in_ = self.feature_names_in_
        return sk


class CriteriaMixin:
    """Information criteria of a fitted mixture density."""

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        X = self._validate_points(X)
        mixture = self._core_mixture()
        total, n = mixture.log_likelihood(X)
        return -2.0 * total + mixture.n_parameters * np.log(n)

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        X = self._validate_points(X)
        mixture = self._core_mixture()
        total, _ = mixture.log_likelihood(X)
        return -2.0 * total + 2.0 * mixture.n_parameters


def updated_at():
    """Now, in RFC 3339 with milliseconds (as the daemon writes it)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def write_atomically(path, data):
    """Writes ``data`` to ``path`` through a temporary file renamed into place: a
    crash leaves the old file or the new one, never half of one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
