#!/usr/bin/env python3
"""scikit-learn reference values for the command-line tests (tests/cli.rs).

Run from the repository root (numpy and scikit-learn needed; written with 1.9.1):

    python3 tests/reference/cli_reference.py

It writes, under tests/reference/cli_data/:

- cli_points.csv: 3-d points (with a header line) from three clusters far from the
  origin, plus a few outliers, printed with repr() so they read back exactly.
- cli_<type>.model.json, one per covariance type: a gmm-stream model file whose
  parameters are deliberately off the data's (EM has work to do from them).
- cli_<type>.expected.json: what scikit-learn says for that model and those points:
  score_samples, predict_proba and predict with the model's parameters loaded as the
  README shows, and the parameters and per-iteration lower bounds (mean
  log-likelihood) after EM_ITERATIONS iterations of EM started from them
  (weights_init / means_init / precisions_init, tol = 0).
"""

import json
import pathlib
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

# Not data/: crates/gmm-model/tests/reference_sklearn.rs reads every JSON file there
# as one of its cases.
DATA = pathlib.Path(__file__).resolve().parent / "cli_data"
SEED = 20261122
K, D = 3, 3
EM_ITERATIONS = 10
REG_COVAR = 1e-6
TYPES = ["full", "diag", "spherical", "tied"]


def points(rng):
    centres = np.array([[10.0, 10.0, 10.0], [14.0, 13.0, 8.0], [7.0, 15.0, 11.0]])
    blocks = []
    for i, (c, n) in enumerate(zip(centres, [90, 60, 50])):
        a = rng.normal(size=(D, D)) * 0.6 + np.eye(D) * (0.5 + 0.3 * i)
        blocks.append(rng.normal(size=(n, D)) @ a.T + c)
    outliers = rng.uniform(-20.0, 40.0, size=(5, D))
    x = np.vstack(blocks + [outliers])
    rng.shuffle(x)
    return x


def spd(rng, scale):
    a = rng.normal(size=(D, D))
    return scale * (a @ a.T / D + np.eye(D))


def start_parameters(rng, cov_type):
    """Parameters near, not at, the clusters, in scikit-learn's covariances_ layout."""
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[9.0, 11.0, 10.5], [13.0, 12.0, 9.0], [8.0, 14.0, 10.0]])
    if cov_type == "full":
        cov = np.array([spd(rng, s) for s in (1.0, 2.0, 1.5)])
    elif cov_type == "tied":
        cov = spd(rng, 2.0)
    elif cov_type == "diag":
        cov = rng.uniform(0.5, 3.0, size=(K, D))
    else:
        cov = rng.uniform(0.5, 3.0, size=K)
    return weights, means, cov


def precisions(cov, cov_type):
    """precisions_init from covariances, symmetrised as scikit-learn checks."""
    if cov_type == "full":
        p = np.array([np.linalg.inv(c) for c in cov])
        return (p + p.transpose(0, 2, 1)) / 2
    if cov_type == "tied":
        p = np.linalg.inv(cov)
        return (p + p.T) / 2
    return 1.0 / cov


def model_file(weights, means, cov, cov_type):
    return {
        "format": "gmm-stream.model",
        "version": 1,
        "covariance_type": cov_type,
        "n_components": K,
        "n_features": D,
        "weights": weights.tolist(),
        "means": means.tolist(),
        "covariances": cov.tolist(),
        "points_seen": 0,
        "model_version": 0,
        "updated_at": "2026-11-22T00:00:00Z",
        "estimator": {
            "kind": "batch",
            "max_iter": 0,
            "tol": 0.0,
            "reg_covar": REG_COVAR,
            "n_init": 1,
            "init": "sklearn reference (tests/reference/cli_reference.py)",
            "seed": SEED,
            "converged": False,
            "n_iter": 0,
            "lower_bound": None,
        },
    }


def loaded(weights, means, cov, cov_type):
    """A fitted-looking GaussianMixture with exactly these parameters (the README way)."""
    gm = GaussianMixture(n_components=K, covariance_type=cov_type)
    gm.weights_, gm.means_, gm.covariances_ = weights, means, cov
    gm.precisions_cholesky_ = _compute_precision_cholesky(cov, cov_type)
    return gm


def em(x, weights, means, cov, cov_type):
    gm = GaussianMixture(
        n_components=K,
        covariance_type=cov_type,
        tol=0.0,
        max_iter=EM_ITERATIONS,
        reg_covar=REG_COVAR,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions(cov, cov_type),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x)
    return {
        "max_iter": EM_ITERATIONS,
        "n_iter": int(gm.n_iter_),
        "weights": gm.weights_.tolist(),
        "means": gm.means_.tolist(),
        "covariances": gm.covariances_.tolist(),
        "lower_bounds": [float(v) for v in gm.lower_bounds_],
    }


def main():
    rng = np.random.default_rng(SEED)
    x = points(rng)
    DATA.mkdir(parents=True, exist_ok=True)
    with open(DATA / "cli_points.csv", "w") as f:
        f.write("a,b,c\n")
        for row in x:
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    for cov_type in TYPES:
        weights, means, cov = start_parameters(rng, cov_type)
        model = model_file(weights, means, cov, cov_type)
        text = json.dumps(model, indent=2) + "\n"
        (DATA / f"cli_{cov_type}.model.json").write_text(text)
        # Exactly the values the Rust side reads back.
        back = json.loads(text)
        w, m, c = (np.array(back[k]) for k in ("weights", "means", "covariances"))
        gm = loaded(w, m, c, cov_type)
        expected = {
            "sklearn_version": sklearn.__version__,
            "score_samples": gm.score_samples(x).tolist(),
            "predict_proba": gm.predict_proba(x).tolist(),
            "predict": gm.predict(x).tolist(),
            "em": em(x, w, m, c, cov_type),
        }
        (DATA / f"cli_{cov_type}.expected.json").write_text(json.dumps(expected) + "\n")


if __name__ == "__main__":
    main()
