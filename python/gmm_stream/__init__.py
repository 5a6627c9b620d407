"""gmm-stream for Python: scikit-learn-compatible Gaussian mixtures on the Rust
core of the ``gmm-stream`` daemon.

- :class:`GaussianMixture`: exact batch EM, scikit-learn's estimator.
- :class:`BayesianGaussianMixture`: variational Bayes, scikit-learn's estimator.
- :class:`OnlineGaussianMixture`: online EM with ``partial_fit``, the daemon's
  streaming estimator (decay or stepwise schedules, warm-up, drift recovery,
  anomaly threshold).
- :func:`load` reads any model file or daemon snapshot (JSON or binary) into the
  matching estimator; ``.save(path)`` writes one; :func:`from_sklearn` and
  ``.to_sklearn()`` convert to and from scikit-learn.
"""

import json
import os

from . import _core
from ._bayesian_mixture import BayesianGaussianMixture
from ._gaussian_mixture import GaussianMixture
from ._online import OnlineGaussianMixture

__version__ = _core.__version__

__all__ = [
    "BayesianGaussianMixture",
    "GaussianMixture",
    "OnlineGaussianMixture",
    "load",
    "from_sklearn",
    "__version__",
]


def load(path):
    """Reads a model file or a daemon snapshot, either form (recognised by its
    first bytes), into the estimator that made it.

    An online model (written by ``gmm-stream run`` or
    :meth:`OnlineGaussianMixture.save`) becomes an :class:`OnlineGaussianMixture`;
    a snapshot carries the estimator's whole state, and ``partial_fit`` continues
    it exactly as the daemon would. Anything else (``gmm-stream fit``,
    :meth:`GaussianMixture.save`, or the mixture fields alone, as another tool
    writes them) becomes a fitted :class:`GaussianMixture`.

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        It is not a valid model file (truncated, corrupted, inconsistent); the
        message says why.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        loaded = _core.read_model_file(data)
    except ValueError as e:
        raise ValueError(f"{os.fspath(path)}: {e}") from None
    meta = json.loads(loaded.metadata_json())
    if loaded.kind == "bayesian":
        return BayesianGaussianMixture._from_file(loaded, meta)
    if loaded.kind == "online":
        return OnlineGaussianMixture._from_file(loaded, meta)
    return GaussianMixture._from_file(loaded, meta)


def from_sklearn(estimator):
    """A fitted scikit-learn ``GaussianMixture`` or ``BayesianGaussianMixture`` as
    this package's class of that name, with the same parameters and fitted
    attributes."""
    from sklearn.mixture import BayesianGaussianMixture as SkBayesianGaussianMixture
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    if isinstance(estimator, SkGaussianMixture):
        return GaussianMixture._from_sklearn(estimator)
    if isinstance(estimator, SkBayesianGaussianMixture):
        return BayesianGaussianMixture._from_sklearn(estimator)
    raise TypeError(
        "from_sklearn takes a fitted sklearn.mixture.GaussianMixture or "
        "BayesianGaussianMixture, got "
        f"{type(estimator).__name__}"
    )
