"""The mixture's parameters in scikit-learn's layouts, and the ones derived from
the covariances (``precisions_cholesky_``, ``precisions_``) computed as
scikit-learn computes them."""

import numpy as np
from scipy import linalg


def precision_cholesky(covariances, covariance_type):
    """scikit-learn's ``precisions_cholesky_`` from ``covariances_``."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        n_components, n_features, _ = covariances.shape
        out = np.empty_like(covariances)
        for k, cov in enumerate(covariances):
            out[k] = _inverse_cholesky_transposed(cov, n_features)
        return out
    if covariance_type == "tied":
        return _inverse_cholesky_transposed(covariances, covariances.shape[0])
    return 1.0 / np.sqrt(covariances)


def _inverse_cholesky_transposed(cov, n_features):
    try:
        cov_chol = linalg.cholesky(cov, lower=True)
    except linalg.LinAlgError:
        raise ValueError(
            "a covariance is not symmetric positive definite; check the model, "
            "or increase reg_covar"
        ) from None
    return linalg.solve_triangular(cov_chol, np.eye(n_features), lower=True).T


def precisions(prec_chol, covariance_type):
    """scikit-learn's ``precisions_`` from ``precisions_cholesky_``."""
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", prec_chol, prec_chol)
    if covariance_type == "tied":
        return prec_chol @ prec_chol.T
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
