"""Parameters derived from one another in scikit-learn's layouts (the core gives
``precisions_cholesky_``; these are numpy-only: LAPACK calls here would run the
BLAS thread pool against the core's threads)."""

import numpy as np


def precisions(prec_chol, covariance_type):
    """scikit-learn's ``precisions_`` from ``precisions_cholesky_``."""
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", prec_chol, prec_chol)
    if covariance_type == "tied":
        return np.einsum("ij,lj->il", prec_chol, prec_chol)
    return prec_chol**2


def covariances_from_precisions(precs, covariance_type):
    """Covariances of given precisions (``precisions_init``)."""
    precs = np.asarray(precs, dtype=np.float64)
    if covariance_type == "full":
        return np.array([np.linalg.inv(p) for p in precs])
    if covariance_type == "tied":
        return np.linalg.inv(precs)
    return 1.0 / precs


def covariances_from_precision_cholesky(prec_chol, covariance_type):
    """Covariances of scikit-learn's ``precisions_cholesky_`` (for an estimator
    that has no ``covariances_``)."""
    return covariances_from_precisions(precisions(prec_chol, covariance_type), covariance_type)
