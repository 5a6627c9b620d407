"""Input checks shared by the estimators, with scikit-learn's messages."""

import numbers

import numpy as np
from sklearn.utils import check_array, check_random_state

from . import _core

#: What the Rust core computes on: float32 input is read as it is and widened
#: there; anything else becomes float64 first.
DTYPES = [np.float64, np.float32]

_SEED_LIMIT = 2**64


def seed_of(random_state):
    """A 64-bit seed for the core from scikit-learn's ``random_state``.

    An int is the seed itself, so ``random_state=7`` matches ``gmm-stream fit
    --seed 7``; a ``RandomState`` (or None: numpy's global one) draws one.
    """
    if isinstance(random_state, numbers.Integral) and 0 <= random_state < _SEED_LIMIT:
        return int(random_state)
    rng = check_random_state(random_state)
    return int(rng.randint(np.iinfo(np.int64).max, dtype=np.int64))


def _check_shape(param, param_shape, name):
    if param.shape != param_shape:
        raise ValueError(
            "The parameter '%s' should have the shape of %s, but got %s"
            % (name, param_shape, param.shape)
        )


def check_weights(weights, n_components):
    weights = check_array(weights, dtype=DTYPES, ensure_2d=False)
    _check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        raise ValueError(
            "The parameter 'weights' should be in the range "
            "[0, 1], but got max value %.5f, min value %.5f"
            % (np.min(weights), np.max(weights))
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(abs(1.0 - float(np.sum(weights))), 0.0, atol=atol):
        raise ValueError(
            "The parameter 'weights' should be normalized, but got sum(weights) = %.5f"
            % np.sum(weights)
        )
    return np.asarray(weights, dtype=np.float64)


def check_means(means, n_components, n_features):
    means = check_array(means, dtype=DTYPES, ensure_2d=False)
    _check_shape(means, (n_components, n_features), "means")
    return np.asarray(means, dtype=np.float64)


_PRECISION_SHAPES = {
    "full": lambda k, d: (k, d, d),
    "tied": lambda k, d: (d, d),
    "diag": lambda k, d: (k, d),
    "spherical": lambda k, d: (k,),
}


def _check_precision_matrix(precision, covariance_type):
    if not (
        np.allclose(precision, precision.T) and np.all(np.linalg.eigvalsh(precision) > 0.0)
    ):
        raise ValueError(
            "'%s precision' should be symmetric, positive-definite" % covariance_type
        )


def check_precisions(precisions, covariance_type, n_components, n_features):
    precisions = check_array(
        precisions,
        dtype=DTYPES,
        ensure_2d=False,
        allow_nd=covariance_type == "full",
    )
    _check_shape(
        precisions,
        _PRECISION_SHAPES[covariance_type](n_components, n_features),
        "%s precision" % covariance_type,
    )
    if covariance_type == "full":
        for p in precisions:
            _check_precision_matrix(p, covariance_type)
    elif covariance_type == "tied":
        _check_precision_matrix(precisions, covariance_type)
    elif np.any(precisions <= 0.0):
        raise ValueError("'%s precision' should be positive" % covariance_type)
    return np.asarray(precisions, dtype=np.float64)


def too_few_samples(n_samples, n_components):
    if n_samples < n_components:
        raise ValueError(
            "Expected n_samples >= n_components "
            f"but got n_components = {n_components}, "
            f"n_samples = {n_samples}"
        )


def check_range(X):
    """Refuses a coordinate beyond the core's bound (``gmm-stream``'s
    ``out_of_range``): finite, but too large for any model to score. Returns X."""
    bound = _core.MAX_ABS_COORDINATE
    if float(np.finfo(X.dtype).max) <= bound:
        # float32 cannot reach the bound (and the bound cannot be cast to it).
        return X
    far = np.abs(X) > bound
    if far.any():
        i, j = (int(v) for v in np.argwhere(far)[0])
        raise ValueError(
            "X[%d, %d] is %r, beyond the bound of +/-%g on coordinates: "
            "such a point cannot be scored or learnt from" % (i, j, float(X[i, j]), bound)
        )
    return X
