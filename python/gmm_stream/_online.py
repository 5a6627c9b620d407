"""``OnlineGaussianMixture``: the daemon's streaming estimator with
scikit-learn's interface and ``partial_fit``."""

import math
import time
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _core
from ._mixture import CriteriaMixin, MixtureMixin, updated_at, write_atomically
from ._validation import DTYPES, seed_of, too_few_samples


class OnlineGaussianMixture(MixtureMixin, CriteriaMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture learnt from a stream by online EM, as ``gmm-stream run``
    learns it.

    ``partial_fit`` absorbs a chunk of points in mini-batches of ``batch_size``:
    for each batch, an E-step under the current model, the batch's sufficient
    statistics added to decayed ones (``schedule``), an M-step. The first
    ``warmup_points`` points are buffered and start the model (k-means++ seeds,
    Lloyd, ``warmup_iterations`` batch EM iterations). A running low quantile of
    recent log-densities is the anomaly threshold; points below it are flagged
    and, with ``trim_anomalies``, left out of the statistics. Abrupt changes are
    detected and answered by forgetting faster. This is the daemon's own code:
    the same points in the same batches give the same model, bit for bit, and a
    daemon snapshot loaded with :func:`gmm_stream.load` continues exactly.

    ``fit(X)`` starts afresh and makes one pass of ``partial_fit`` over ``X``,
    ending the warm-up with what it holds if ``X`` is shorter (as the daemon at
    the end of a finite file).

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    reg_covar : float, default=1e-6
    batch_size : int, default=1024
        Points per EM update (``estimator.batch_size``).
    schedule : {'decay', 'stepwise'}, default='decay'
        ``decay`` forgets at a constant rate (tracks drift); ``stepwise`` takes
        steps ``(t + t0)^-stepwise_alpha`` (converges on a stationary stream).
    half_life : float, default=10000.0
        Half-life of the decay, in ``half_life_unit``; ``inf`` (or None) never
        forgets.
    half_life_unit : {'points', 'batches', 'seconds'}, default='points'
        For 'seconds', the time between ``partial_fit`` calls (or the
        ``elapsed_seconds`` given) is the time between batches.
    stepwise_alpha : float, default=0.7
    stepwise_t0 : float, default=None
        Offset t0 in batches; None is ``warmup_points / batch_size``.
    warmup_points : int, default=2000
    warmup_iterations : int, default=20
    min_weight : float, default=1e-3
        A component whose share of the weight falls below is re-seeded.
    map_prior : bool, default=False
        MAP estimation under a conjugate prior fitted to the warm-up points.
    trim_anomalies : bool, default=True
        Leave points flagged as anomalies out of the statistics (and the least
        likely warm-up points out of the start).
    anomaly_quantile : float, default=0.001
        Flag the points whose log-density is below this quantile of recent ones.
    anomaly_window : int, default=100000
        How many recent points the quantile covers.
    drift_detection : bool, default=True
    drift_threshold, drift_min_drop, drift_speedup, drift_recovery, drift_baseline_batches
        The change detector (``estimator.drift`` in the daemon's configuration).
    inference : {'em', 'variational'}, default='em'
        ``variational``: the decayed statistics feed a variational posterior with
        up to ``n_components`` components; components the stream stops
        supporting are retired and reborn where new clusters appear
        (``estimator.inference``).
    weight_concentration_prior_type, weight_concentration_prior, mean_precision_prior, retire_weight
        Online variational inference's priors (``[estimator.variational]``;
        ``weight_concentration_prior`` None is 1/K).
    random_state : int, RandomState instance or None, default=None
        The estimator's seed (``estimator.seed``).

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_
        The current model, as scikit-learn's (once the warm-up is over).
    points_seen_ : int
        Points absorbed since the model was born.
    model_version_ : int
        +1 at every M-step.
    anomaly_threshold_ : float or None
        Log-density below which a point is an anomaly (None until enough points
        have been scored).
    n_anomalies_ : int
        Points flagged while they were absorbed (each judged by the threshold as
        it was before its batch).
    changes_detected_ : int
        Abrupt changes detected.
    n_features_in_ : int
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"full", "tied", "diag", "spherical"})],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "schedule": [StrOptions({"decay", "stepwise"})],
        "half_life": [Interval(Real, 0.0, None, closed="right"), None],
        "half_life_unit": [StrOptions({"points", "batches", "seconds"})],
        "stepwise_alpha": [Interval(Real, 0.5, 1.0, closed="right")],
        "stepwise_t0": [Interval(Real, 0.0, None, closed="left"), None],
        "warmup_points": [Interval(Integral, 1, None, closed="left")],
        "warmup_iterations": [Interval(Integral, 0, None, closed="left")],
        "min_weight": [Interval(Real, 0.0, 0.5, closed="left")],
        "map_prior": ["boolean"],
        "trim_anomalies": ["boolean"],
        "anomaly_quantile": [Interval(Real, 0.0, 1.0, closed="neither")],
        "anomaly_window": [Interval(Integral, 10, None, closed="left")],
        "drift_detection": ["boolean"],
        "drift_threshold": [Interval(Real, 0.0, None, closed="neither")],
        "drift_min_drop": [Interval(Real, 0.0, None, closed="left")],
        "drift_speedup": [Interval(Real, 1.0, None, closed="left")],
        "drift_recovery": [Interval(Real, 0.0, None, closed="left")],
        "drift_baseline_batches": [Interval(Integral, 2, None, closed="left")],
        "inference": [StrOptions({"em", "variational"})],
        "weight_concentration_prior_type": [
            StrOptions({"dirichlet_distribution", "dirichlet_process"})
        ],
        "weight_concentration_prior": [Interval(Real, 0.0, None, closed="neither"), None],
        "mean_precision_prior": [Interval(Real, 0.0, None, closed="neither")],
        "retire_weight": [Interval(Real, 0.0, 0.5, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        reg_covar=1e-6,
        batch_size=1024,
        schedule="decay",
        half_life=10_000.0,
        half_life_unit="points",
        stepwise_alpha=0.7,
        stepwise_t0=None,
        warmup_points=2000,
        warmup_iterations=20,
        min_weight=1e-3,
        map_prior=False,
        trim_anomalies=True,
        anomaly_quantile=0.001,
        anomaly_window=100_000,
        drift_detection=True,
        drift_threshold=8.0,
        drift_min_drop=0.25,
        drift_speedup=8.0,
        drift_recovery=1.0,
        drift_baseline_batches=10,
        inference="em",
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=None,
        mean_precision_prior=0.01,
        retire_weight=0.005,
        random_state=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.batch_size = batch_size
        self.schedule = schedule
        self.half_life = half_life
        self.half_life_unit = half_life_unit
        self.stepwise_alpha = stepwise_alpha
        self.stepwise_t0 = stepwise_t0
        self.warmup_points = warmup_points
        self.warmup_iterations = warmup_iterations
        self.min_weight = min_weight
        self.map_prior = map_prior
        self.trim_anomalies = trim_anomalies
        self.anomaly_quantile = anomaly_quantile
        self.anomaly_window = anomaly_window
        self.drift_detection = drift_detection
        self.drift_threshold = drift_threshold
        self.drift_min_drop = drift_min_drop
        self.drift_speedup = drift_speedup
        self.drift_recovery = drift_recovery
        self.drift_baseline_batches = drift_baseline_batches
        self.inference = inference
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.retire_weight = retire_weight
        self.random_state = random_state

    def _core_params(self):
        """The parameters as the core takes them (the daemon's resolution of
        ``stepwise_t0`` and of an infinite half-life)."""
        half_life = self.half_life
        if half_life is not None and math.isinf(half_life):
            half_life = None
        t0 = self.stepwise_t0
        if t0 is None:
            t0 = self.warmup_points / self.batch_size
        return {
            "n_components": self.n_components,
            "covariance_type": self.covariance_type,
            "reg_covar": float(self.reg_covar),
            "schedule": self.schedule,
            "half_life": None if half_life is None else float(half_life),
            "half_life_unit": self.half_life_unit,
            "stepwise_alpha": float(self.stepwise_alpha),
            "stepwise_t0": float(t0),
            "warmup_points": self.warmup_points,
            "warmup_iterations": self.warmup_iterations,
            "seed": seed_of(self.random_state),
            "min_weight": float(self.min_weight),
            "map_prior": bool(self.map_prior),
            "trim_anomalies": bool(self.trim_anomalies),
            "anomaly_quantile": float(self.anomaly_quantile),
            "anomaly_window": self.anomaly_window,
            "drift_detection": bool(self.drift_detection),
            "drift_threshold": float(self.drift_threshold),
            "drift_min_drop": float(self.drift_min_drop),
            "drift_speedup": float(self.drift_speedup),
            "drift_recovery": float(self.drift_recovery),
            "drift_baseline_batches": self.drift_baseline_batches,
            "inference": self.inference,
            "weight_prior": self.weight_concentration_prior_type,
            "weight_concentration_prior": None
            if self.weight_concentration_prior is None
            else float(self.weight_concentration_prior),
            "mean_precision_prior": float(self.mean_precision_prior),
            "retire_weight": float(self.retire_weight),
        }

    def fit(self, X, y=None):
        """Starts afresh and absorbs ``X`` in one pass of ``partial_fit``; if the
        warm-up is not over by the end, the model starts from what it holds.

        Returns
        -------
        self
        """
        self._validate_params()
        X = validate_data(self, X, dtype=DTYPES, ensure_min_samples=2)
        too_few_samples(X.shape[0], self.n_components)
        self._estimator = _core.OnlineEstimator(self._core_params())
        self._last_batch = time.time()
        self.n_anomalies_ = self._estimator.partial_fit(X, self.batch_size, 0.0)
        self.n_anomalies_ += self._estimator.finish_warmup()
        self._sync()
        return self

    def partial_fit(self, X, y=None, elapsed_seconds=None):
        """Absorbs a chunk of points, in batches of ``batch_size``.

        The first call starts the estimator from the parameters; later calls
        continue it (parameter changes apply at the next ``fit``). Until
        ``warmup_points`` points have arrived they are buffered and there is no
        model yet.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        elapsed_seconds : float, default=None
            Time since the previous chunk, for a half-life in seconds; None
            measures it.

        Returns
        -------
        self
        """
        first = getattr(self, "_estimator", None) is None
        if first:
            self._validate_params()
        X = validate_data(self, X, dtype=DTYPES, reset=first)
        now = time.time()
        if first:
            self._estimator = _core.OnlineEstimator(self._core_params())
            self._last_batch = now
            self.n_anomalies_ = 0
        if elapsed_seconds is None:
            elapsed_seconds = max(0.0, now - self._last_batch)
        self._last_batch = now
        self.n_anomalies_ += self._estimator.partial_fit(X, self.batch_size, float(elapsed_seconds))
        self._sync()
        return self

    def _sync(self):
        """The fitted attributes from the core estimator."""
        est = self._estimator
        model = est.model
        if model is not None:
            self._set_mixture(model)
        self.points_seen_ = est.points_seen
        self.model_version_ = est.model_version
        self.anomaly_threshold_ = est.anomaly_threshold
        self.changes_detected_ = est.changes_detected

    def __sklearn_is_fitted__(self):
        return hasattr(self, "means_")

    def _check_fitted(self):
        if getattr(self, "_estimator", None) is not None and not hasattr(self, "means_"):
            check_is_fitted(
                self,
                msg=(
                    "This %(name)s instance has no model yet: it is warming up "
                    f"({self._estimator.warmup_len} of {self.warmup_points} points "
                    "buffered). Call partial_fit with more points, or fit."
                ),
            )
        check_is_fitted(self)

    def predict_anomaly(self, X):
        """True for the samples whose log-density is below ``anomaly_threshold_``
        (none while there is no threshold yet)."""
        log_density = self.score_samples(X)
        threshold = self.anomaly_threshold_
        if threshold is None:
            return np.zeros(log_density.shape, dtype=bool)
        return log_density < threshold

    def save(self, path):
        """Writes a snapshot (model file with the estimator's state: JSON when
        ``path`` ends in ``.json``, else binary) that the daemon restores from and
        :func:`gmm_stream.load` continues exactly."""
        self._check_fitted()
        write_atomically(path, self._estimator.file_bytes(str(path), updated_at()))

    def to_sklearn(self):
        """The current model as a ``sklearn.mixture.GaussianMixture``."""
        return self._to_sklearn_mixture()

    @classmethod
    def _from_file(cls, loaded, meta):
        core = loaded.online_estimator()
        p = core.params()
        params = {
            name: p[name]
            for name in cls._get_param_names()
            if name in p and name not in ("random_state", "stepwise_t0", "half_life")
        }
        params["random_state"] = p["seed"]
        params["weight_concentration_prior_type"] = p["weight_prior"]
        params["half_life"] = math.inf if p["half_life"] is None else p["half_life"]
        if p["schedule"] == "stepwise":
            params["stepwise_t0"] = p["stepwise_t0"]
        est = cls(**params)
        est._estimator = core
        est._last_batch = time.time()
        est.n_features_in_ = meta["n_features"]
        est.n_anomalies_ = 0
        est._sync()
        return est
