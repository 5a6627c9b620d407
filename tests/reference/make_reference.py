#!/usr/bin/env python3
"""Generates the scikit-learn reference cases that crates/gmm-model/tests/reference_sklearn.rs checks.

Run from the repository root:

    python3 tests/reference/make_reference.py

Every case is a data set (seeded, so the output is deterministic for given numpy and
scikit-learn versions) and, for each covariance type, an EM run of scikit-learn's
GaussianMixture from a given start (weights_init, means_init, precisions_init) with
tol = 0 and max_iter = N. The JSON file records the data, the start, the expected
parameters after N iterations, the lower bound of every iteration, held-out points
and their expected score_samples, and the versions that produced them.

Data far from the origin. The "shifted" cases store data shifted by SHIFT in every
coordinate. scikit-learn's diag, spherical and tied M-steps form E[x^2] - E[x]^2 and
its E-step forms X P - mu P, so on such data it loses most of its digits; the estimator
under test must not. Their expected values therefore come from scikit-learn run on the
centred data, which is formed as (stored shifted data) - SHIFT: that subtraction is
exact (Sterbenz), so the stored data is exactly the centred data translated by SHIFT,
and the expected answer is exactly scikit-learn's centred answer translated back.
Covariances and lower bounds are translation invariant; means are stored relative to
the shift ("means_centred"). The script also runs scikit-learn on the shifted data
directly and prints how many digits it loses there (it does not fail on that).
"""

import json
import os
import platform
import sys
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
COV_TYPES = ["full", "diag", "spherical", "tied"]
SHIFT = 1.0e6


def random_spd(rng, d, scale):
    """A well-conditioned random SPD matrix with variances of order `scale`."""
    a = rng.normal(size=(d, d))
    m = scale * (0.5 * a @ a.T / d + 0.5 * np.eye(d))
    return 0.5 * (m + m.T)


def make_mixture_data(rng, n, d, k, separation, n_held_out):
    """n points (and held-out points) from a random mixture whose component means
    are `separation` standard deviations apart on average."""
    weights = rng.dirichlet(np.full(k, 4.0))
    means = rng.normal(size=(k, d)) * separation / np.sqrt(2.0)
    covs = [random_spd(rng, d, rng.uniform(0.5, 2.0)) for _ in range(k)]

    def draw(m):
        labels = rng.choice(k, size=m, p=weights)
        x = np.empty((m, d))
        for j in range(k):
            idx = labels == j
            x[idx] = rng.multivariate_normal(means[j], covs[j], size=idx.sum())
        return x

    return draw(n), draw(n_held_out), means


def start_parameters(rng, cov_type, true_means, x):
    """A start that is near but not at the answer: perturbed true means, uneven
    weights, and random covariances of the type's shape at the data's scale."""
    k, d = true_means.shape
    spread = float(np.mean(np.var(x, axis=0)))
    weights = rng.uniform(0.5, 1.5, size=k)
    weights /= weights.sum()
    means = true_means + rng.normal(size=(k, d)) * 0.5
    if cov_type == "full":
        covs = np.stack([random_spd(rng, d, spread) for _ in range(k)])
    elif cov_type == "diag":
        covs = rng.uniform(0.5, 1.5, size=(k, d)) * spread
    elif cov_type == "spherical":
        covs = rng.uniform(0.5, 1.5, size=k) * spread
    else:
        covs = random_spd(rng, d, spread)
    return weights, means, covs


def precisions_of(cov_type, covs):
    if cov_type in ("full", "tied"):
        p = np.linalg.inv(covs)
        # inv of a symmetric matrix is symmetric only up to rounding; sklearn checks.
        return 0.5 * (p + np.swapaxes(p, -1, -2))
    return 1.0 / covs


def fit_sklearn(x, cov_type, k, weights, means, precisions, n_iter, reg_covar):
    gm = GaussianMixture(
        n_components=k,
        covariance_type=cov_type,
        tol=0.0,
        max_iter=n_iter,
        reg_covar=reg_covar,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        random_state=0,
    )
    with warnings.catch_warnings():
        # tol = 0 never converges: that is the point, N iterations exactly.
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x)
    assert gm.n_iter_ == n_iter, (gm.n_iter_, n_iter)
    return gm


def lower_bounds_by_refitting(x, cov_type, k, weights, means, precisions, n_iter, reg_covar):
    """The lower bound of iteration i as `lower_bound_` of a separate fit with
    max_iter = i: an independent route to the per-iteration history."""
    return [
        fit_sklearn(x, cov_type, k, weights, means, precisions, i, reg_covar).lower_bound_
        for i in range(1, n_iter + 1)
    ]


def rel_err(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale)


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=float).ravel()]


def tolist(a):
    return np.asarray(a, dtype=float).tolist()


# name, description, n, d, K, separation (in sd), shifted, iterations, reg_covar, seed
CASES = [
    ("separated_d2_k3", "well-separated, d = 2, K = 3", 600, 2, 3, 10.0, False, 20, 1e-6, 101),
    ("overlap_d1_k2", "overlapping, d = 1, K = 2", 500, 1, 2, 1.5, False, 25, 1e-6, 102),
    ("overlap_d3_k4", "overlapping, d = 3, K = 4", 800, 3, 4, 2.0, False, 25, 1e-6, 103),
    ("single_d5_k1", "one component, d = 5, K = 1", 300, 5, 1, 0.0, False, 10, 1e-6, 104),
    (
        "separated_d8_k3",
        "well-separated, d = 8 (gemm paths), K = 3, n > one E-step chunk (1024)",
        1300, 8, 3, 8.0, False, 15, 1e-6, 105,
    ),
    ("overlap_d6_k2_reg", "overlapping, d = 6, K = 2, reg_covar = 1e-2", 400, 6, 2, 1.5, False, 20, 1e-2, 106),
    ("shifted_d3_k3", "moderately separated, d = 3, K = 3, shifted by +1e6", 700, 3, 3, 4.0, True, 20, 1e-6, 107),
    ("shifted_d8_k2", "overlapping, d = 8, K = 2, shifted by +1e6", 600, 8, 2, 2.5, True, 15, 1e-6, 108),
]


def shifted_pair(a, shift):
    """(stored, centred): stored = a + shift rounded; centred = stored - shift, exact."""
    if shift == 0.0:
        return a.copy(), a.copy()
    stored = a + shift
    return stored, stored - shift


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }
    print(f"versions: {versions}")
    for name, description, n, d, k, sep, shifted, n_iter, reg_covar, seed in CASES:
        rng = np.random.default_rng(seed)
        x0, held0, true_means = make_mixture_data(rng, n, d, k, sep, n_held_out=40)
        shift = SHIFT if shifted else 0.0
        x_stored, x_centred = shifted_pair(x0, shift)
        held_stored, held_centred = shifted_pair(held0, shift)
        fits = []
        for cov_type in COV_TYPES:
            weights, means0, covs = start_parameters(rng, cov_type, true_means, x0)
            means_stored, means_centred = shifted_pair(means0, shift)
            precisions = precisions_of(cov_type, covs)
            gm = fit_sklearn(
                x_centred, cov_type, k, weights, means_centred, precisions, n_iter, reg_covar
            )
            refit = lower_bounds_by_refitting(
                x_centred, cov_type, k, weights, means_centred, precisions, n_iter, reg_covar
            )
            # Two routes to the same numbers: they must agree to the last bit.
            assert np.array_equal(np.array(refit), np.array(gm.lower_bounds_)), name
            score_held = gm.score_samples(held_centred)
            fits.append(
                {
                    "covariance_type": cov_type,
                    "reg_covar": reg_covar,
                    "n_iter": n_iter,
                    "start": {
                        "weights": tolist(weights),
                        "means": tolist(means_stored),
                        # The Rust side is given these; sklearn got their inverses.
                        "covariances": tolist(covs),
                        "precisions": tolist(precisions),
                    },
                    "expected": {
                        "weights": tolist(gm.weights_),
                        "means_centred": tolist(gm.means_),
                        "means": tolist(gm.means_ + shift),
                        "covariances": tolist(gm.covariances_),
                        "lower_bounds": flat(gm.lower_bounds_),
                        "score_samples_held_out": flat(score_held),
                        # Model selection: scikit-learn's BIC and AIC (its
                        # _n_parameters) of the fitted model on the held-out points.
                        "bic_held_out": float(gm.bic(held_centred)),
                        "aic_held_out": float(gm.aic(held_centred)),
                    },
                }
            )
            if shifted:
                demonstrate_sklearn_loss(
                    name, cov_type, k, weights, means_stored, precisions, n_iter, reg_covar,
                    x_stored, gm,
                )
        case = {
            "name": name,
            "description": description,
            "generator": "tests/reference/make_reference.py",
            "versions": versions,
            "seed": seed,
            "n_samples": n,
            "n_features": d,
            "n_components": k,
            "shift": shift,
            "note": (
                "X, held_out and start.means are stored shifted by `shift`; "
                "expected.means_centred are the fitted means minus `shift` "
                "(scikit-learn run on the exactly centred data); covariances and "
                "lower bounds are translation invariant. Layouts as scikit-learn's: "
                "means [K][d], covariances full [K][d][d], diag [K][d], spherical [K], "
                "tied [d][d]."
            ),
            "X": flat(x_stored),
            "held_out": flat(held_stored),
            "fits": fits,
        }
        path = os.path.join(OUT_DIR, f"{name}.json")
        with open(path, "w") as f:
            json.dump(case, f, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


def demonstrate_sklearn_loss(
    name, cov_type, k, weights, means_stored, precisions, n_iter, reg_covar, x_stored, exact
):
    """Runs scikit-learn on the shifted data itself and prints how far it lands from
    its own answer on the centred data (the exact answer translated back)."""
    try:
        gm = fit_sklearn(x_stored, cov_type, k, weights, means_stored, precisions, n_iter, reg_covar)
    except Exception as e:  # sklearn may even find a covariance not positive definite
        print(f"  {name}/{cov_type}: scikit-learn on shifted data fails: {e}")
        return
    cov_err = rel_err(gm.covariances_, exact.covariances_)
    lb_err = rel_err(gm.lower_bounds_, exact.lower_bounds_)
    mean_err = float(np.max(np.abs((gm.means_ - SHIFT) - exact.means_)))
    print(
        f"  {name}/{cov_type}: scikit-learn on data shifted by {SHIFT:g}: "
        f"covariances rel. error {cov_err:.2e}, lower bounds rel. error {lb_err:.2e}, "
        f"means abs. error {mean_err:.2e}"
    )


if __name__ == "__main__":
    sys.exit(main())
