#!/usr/bin/env python3
"""Generates the scikit-learn BayesianGaussianMixture reference cases that
tests/reference_bayesian.rs checks.

Run from the repository root:

    python3 tests/reference/make_bayesian_reference.py

Every case is a data set that ships with scikit-learn (iris, wine: no download) or a
seeded synthetic one, and, for every covariance type and both weight priors, a
variational run of BayesianGaussianMixture started from given responsibilities (those
of a start model M: GaussianMixture(M).predict_proba(X), which is what
`gmm-stream fit --bayesian ... --init-model M` starts from) with tol = 0 and
max_iter = N. The JSON file records the data, M, the priors scikit-learn resolved, the
posterior after N iterations (weights_, means_, covariances_, weight_concentration_,
mean_precision_, degrees_of_freedom_), the lower bound of every iteration, and the
score_samples of a GaussianMixture holding the fitted weights, means and covariances.

Data far from the origin ("shifted" cases) are handled as in make_reference.py: the
data are stored shifted (by SHIFT, or less, per case), and the expected values come
from scikit-learn run on the exactly centred data (stored - SHIFT, exact by Sterbenz); means are compared
relative to the shift ("means_centred"), the mean prior likewise.
"""

import json
import os
import platform
import sys
import warnings

import numpy as np
import sklearn
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bayesian")
COV_TYPES = ["full", "diag", "spherical", "tied"]
WEIGHT_PRIORS = ["dirichlet_process", "dirichlet_distribution"]
SHIFT = 1.0e6


class FromResponsibilities(BayesianGaussianMixture):
    """BayesianGaussianMixture whose initialisation is given responsibilities: the
    `_initialize(X, resp)` that every init_params ends in, fed directly."""

    def __init__(self, resp=None, **kwargs):
        super().__init__(**kwargs)
        self.resp = resp

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self.resp)


def start_model(x, cov_type, k, seed):
    """A rough model to start from: two EM iterations from k-means."""
    gm = GaussianMixture(
        n_components=k, covariance_type=cov_type, max_iter=2, tol=0.0, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x)
    return gm


def tolist(a):
    return np.asarray(a, dtype=float).tolist()


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=float).ravel()]


def iris():
    return load_iris().data.astype(float)


def wine():
    return load_wine().data.astype(float)


def blobs(seed, n, d, k, sep):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * sep
    labels = rng.integers(0, k, size=n)
    return means[labels] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, size=(1, d))


# name, description, data, K, iterations, shift, priors (None: scikit-learn's defaults).
# iris is shifted by 1e5 only: its within-cluster spreads are ~0.1, and at 1e6 the spacing
# of doubles (1.2e-10) alone moves its log-densities by ~1e-9, the tolerance itself.
CASES = [
    ("iris_k5", "iris (150 x 4), K = 5, default priors", iris, 5, 30, 0.0, {}),
    (
        "iris_k6_sparse",
        "iris, K = 6, weight concentration 0.01 and explicit priors",
        iris, 6, 40, 0.0,
        {
            "weight_concentration_prior": 0.01,
            "mean_precision_prior": 0.5,
            "degrees_of_freedom_prior": 6.5,
        },
    ),
    ("wine_k4", "wine (178 x 13, features of very different scales), K = 4", wine, 4, 25, 0.0, {}),
    ("iris_shifted_k4", "iris shifted by +1e5, K = 4", iris, 4, 30, 1e5, {}),
    (
        "blobs_shifted_d3_k6",
        "3 blobs in d = 3 shifted by +1e6, K = 6, weight concentration 1e-3",
        lambda: blobs(211, 400, 3, 3, 6.0), 6, 40, SHIFT,
        {"weight_concentration_prior": 1e-3},
    ),
]


def explicit_priors(priors, x_centred, cov_type):
    """The case's explicit prior choices, completed for the covariance type: the cases
    that set the degrees of freedom also set a mean prior and a covariance prior, so
    that every prior flag is exercised."""
    if "degrees_of_freedom_prior" not in priors:
        return dict(priors)
    d = x_centred.shape[1]
    out = dict(priors)
    out["mean_prior"] = x_centred.mean(axis=0) + 0.25
    var = np.var(x_centred, axis=0, ddof=1)
    out["covariance_prior"] = {
        "full": np.diag(var) * 0.5,
        "tied": np.diag(var) * 0.5,
        "diag": var * 0.5,
        "spherical": float(var.mean() * 0.5),
    }[cov_type]
    assert out["degrees_of_freedom_prior"] > d - 1
    return out


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }
    print(f"versions: {versions}")
    for name, description, data, k, n_iter, shift, priors in CASES:
        x0 = data()
        n, d = x0.shape
        x_stored = x0 + shift
        x_centred = x_stored - shift  # exact: the data scikit-learn sees
        fits = []
        for cov_type in COV_TYPES:
            m = start_model(x_centred, cov_type, k, seed=len(fits))
            resp = m.predict_proba(x_centred)
            for weight_prior in WEIGHT_PRIORS:
                chosen = explicit_priors(priors, x_centred, cov_type)
                bgm = FromResponsibilities(
                    resp=resp,
                    n_components=k,
                    covariance_type=cov_type,
                    weight_concentration_prior_type=weight_prior,
                    tol=0.0,
                    max_iter=n_iter,
                    reg_covar=1e-6,
                    random_state=0,
                    **chosen,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    bgm.fit(x_centred)
                assert bgm.n_iter_ == n_iter, (bgm.n_iter_, n_iter)
                plug_in = GaussianMixture(n_components=k, covariance_type=cov_type)
                plug_in.weights_ = bgm.weights_
                plug_in.means_ = bgm.means_
                plug_in.covariances_ = bgm.covariances_
                plug_in.precisions_cholesky_ = bgm.precisions_cholesky_
                wc = bgm.weight_concentration_
                weight_concentration = (
                    [tolist(wc[0]), tolist(wc[1])]
                    if weight_prior == "dirichlet_process"
                    else tolist(wc)
                )
                given = {
                    key: (value - shift if key == "mean_prior" else value)
                    for key, value in chosen.items()
                }
                fits.append(
                    {
                        "covariance_type": cov_type,
                        "weight_concentration_prior_type": weight_prior,
                        "reg_covar": 1e-6,
                        "n_iter": n_iter,
                        "start": {
                            "weights": tolist(m.weights_),
                            "means": tolist(m.means_ + shift),
                            "covariances": tolist(m.covariances_),
                        },
                        # Explicit prior choices; mean_prior relative to the shift.
                        "priors_given": {key: tolist(v) for key, v in given.items()},
                        "priors_resolved": {
                            "weight_concentration_prior": float(bgm.weight_concentration_prior_),
                            "mean_precision_prior": float(bgm.mean_precision_prior_),
                            "mean_prior_centred": tolist(bgm.mean_prior_),
                            "degrees_of_freedom_prior": float(bgm.degrees_of_freedom_prior_),
                            "covariance_prior": tolist(bgm.covariance_prior_),
                        },
                        "expected": {
                            "weights": tolist(bgm.weights_),
                            "means_centred": tolist(bgm.means_),
                            "covariances": tolist(bgm.covariances_),
                            "weight_concentration": weight_concentration,
                            "mean_precision": tolist(bgm.mean_precision_),
                            "degrees_of_freedom": tolist(bgm.degrees_of_freedom_),
                            "lower_bounds": flat(bgm.lower_bounds_),
                            "score_samples": flat(plug_in.score_samples(x_centred)),
                        },
                    }
                )
        case = {
            "name": name,
            "description": description,
            "generator": "tests/reference/make_bayesian_reference.py",
            "versions": versions,
            "n_samples": n,
            "n_features": d,
            "n_components": k,
            "shift": shift,
            "X": flat(x_stored),
            "fits": fits,
        }
        path = os.path.join(OUT_DIR, f"{name}.json")
        with open(path, "w") as f:
            json.dump(case, f, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
