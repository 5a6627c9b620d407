"""BayesianGaussianMixture against scikit-learn's: from the same initial
responsibilities the posterior agrees to 1e-8 relative and the variational
scores to 1e-9, for both weight priors and the four covariance types; files,
conversions and pickling keep it."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SkBayesianGaussianMixture
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import gmm_stream
from conftest import mixture_sample

K, D = 5, 3


class SkFromResponsibilities(SkBayesianGaussianMixture):
    """scikit-learn's estimator started from given responsibilities (the
    `_initialize(X, resp)` every init_params ends in, fed directly)."""

    def __init__(self, resp=None, **kwargs):
        super().__init__(**kwargs)
        self.resp = resp

    def _initialize_parameters(self, X, random_state, xp=None):
        self._initialize(X, self.resp)


def close(ours, theirs, rtol, what):
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.max(np.abs(theirs)), err_msg=what)


@pytest.fixture(scope="module")
def data():
    x, _ = mixture_sample(1500, D, 3, seed=31, spread=4.0)
    return x[:1200], x[1200:]


@pytest.mark.parametrize("prior", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_the_posterior_agrees_with_scikit_learn_from_the_same_start(data, prior, covariance_type):
    x, held_out = data
    params = dict(
        n_components=K,
        covariance_type=covariance_type,
        weight_concentration_prior_type=prior,
        tol=0.0,
        max_iter=20,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = SkGaussianMixture(K, covariance_type=covariance_type, max_iter=3, random_state=0).fit(x)
        theirs = SkFromResponsibilities(resp=start.predict_proba(x), **params).fit(x)
        ours = gmm_stream.BayesianGaussianMixture(**params).fit(x, init_model=start)
    assert ours.n_iter_ == theirs.n_iter_ == 20
    for name in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_cholesky_",
        "mean_precision_",
        "degrees_of_freedom_",
        "mean_prior_",
        "covariance_prior_",
    ):
        close(getattr(ours, name), getattr(theirs, name), 1e-8, name)
    if prior == "dirichlet_process":
        for a, b in zip(ours.weight_concentration_, theirs.weight_concentration_):
            close(a, b, 1e-8, "weight_concentration_")
    else:
        close(ours.weight_concentration_, theirs.weight_concentration_, 1e-8, "weight_concentration_")
    for name in ("weight_concentration_prior_", "mean_precision_prior_", "degrees_of_freedom_prior_"):
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name), rel=1e-12), name
    # (scikit-learn's tied bounds are 1-element arrays.)
    close(ours.lower_bounds_, np.ravel(theirs.lower_bounds_), 1e-8, "lower_bounds_")
    np.testing.assert_allclose(ours.score_samples(held_out), theirs.score_samples(held_out), rtol=1e-9)
    np.testing.assert_allclose(
        ours.predict_proba(held_out), theirs.predict_proba(held_out), rtol=1e-8, atol=1e-12
    )


def test_unneeded_components_fade(data):
    x, _ = data
    est = gmm_stream.BayesianGaussianMixture(
        n_components=8, weight_concentration_prior=1e-3, max_iter=500, random_state=0
    ).fit(x)
    assert est.converged_
    assert (est.weights_ > 0.05).sum() == 3


@pytest.mark.parametrize("suffix", [".json", ".bin"])
def test_saved_loaded_pickled_and_converted_it_scores_the_same(data, tmp_path, suffix):
    x, held_out = data
    est = gmm_stream.BayesianGaussianMixture(
        n_components=K, covariance_type="tied", weight_concentration_prior_type="dirichlet_distribution",
        random_state=3,
    ).fit(x)
    expected = est.score_samples(held_out)
    path = tmp_path / f"bayes{suffix}"
    est.save(path)
    loaded = gmm_stream.load(path)
    assert isinstance(loaded, gmm_stream.BayesianGaussianMixture)
    assert loaded.get_params()["weight_concentration_prior_type"] == "dirichlet_distribution"
    assert loaded.n_iter_ == est.n_iter_
    np.testing.assert_array_equal(loaded.score_samples(held_out), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).score_samples(held_out), expected)
    sk = est.to_sklearn()
    np.testing.assert_allclose(sk.score_samples(held_out), expected, rtol=1e-12)
    back = gmm_stream.from_sklearn(sk)
    np.testing.assert_allclose(back.score_samples(held_out), expected, rtol=1e-12)


def test_a_cli_bayesian_fit_loads(gmm_stream_bin, tmp_path, data):
    from conftest import run_cli, write_csv

    x, held_out = data
    points = tmp_path / "x.csv"
    write_csv(points, x)
    out = tmp_path / "cli.json"
    run_cli(gmm_stream_bin, "fit", "-q", "-i", points, "-k", K, "--bayesian", "dirichlet-process", "--seed", 4, "-o", out)
    cli = gmm_stream.load(out)
    assert isinstance(cli, gmm_stream.BayesianGaussianMixture)
    ours = gmm_stream.BayesianGaussianMixture(n_components=K, random_state=4).fit(x)
    np.testing.assert_array_equal(ours.means_, cli.means_)
    np.testing.assert_array_equal(ours.score_samples(held_out), cli.score_samples(held_out))
