"""Against scikit-learn: from the same start (weights_init, means_init,
precisions_init), the fitted parameters agree to 1e-8 relative and score_samples
to 1e-9, for the four covariance types; the converted estimators agree both ways."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import gmm_stream
from conftest import mixture_sample

TYPES = ["full", "diag", "spherical", "tied"]
K, D = 4, 5


def start_for(covariance_type, x, seed):
    """A rough, deliberately imperfect start: random points as means, equal
    weights, the data's spread as the covariance."""
    rng = np.random.default_rng(seed)
    means = x[rng.choice(len(x), K, replace=False)]
    var = x.var(axis=0)
    weights = np.full(K, 1.0 / K)
    if covariance_type == "full":
        prec = np.array([np.diag(1.0 / var)] * K)
    elif covariance_type == "tied":
        prec = np.diag(1.0 / var)
    elif covariance_type == "diag":
        prec = np.array([1.0 / var] * K)
    else:
        prec = np.full(K, 1.0 / var.mean())
    return dict(weights_init=weights, means_init=means, precisions_init=prec)


def assert_close(ours, theirs, rtol, what):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    scale = np.max(np.abs(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.fixture(scope="module")
def data():
    x, _ = mixture_sample(3000, D, K, seed=5, spread=2.5)
    held_out, _ = mixture_sample(500, D, K, seed=6, spread=2.5)
    return x, held_out


@pytest.mark.parametrize("covariance_type", TYPES)
def test_parameters_and_scores_agree_from_the_same_start(data, covariance_type):
    x, held_out = data
    params = dict(
        n_components=K,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=25,
        reg_covar=1e-6,
        **start_for(covariance_type, x, seed=1),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = SkGaussianMixture(**params).fit(x)
        ours = gmm_stream.GaussianMixture(**params).fit(x)
    assert ours.n_iter_ == theirs.n_iter_ == 25
    assert ours.converged_ == theirs.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert getattr(ours, name).shape == getattr(theirs, name).shape, name
        assert_close(getattr(ours, name), getattr(theirs, name), 1e-8, name)
    assert_close(ours.lower_bounds_, theirs.lower_bounds_, 1e-10, "lower_bounds_")
    assert_close(ours.lower_bound_, theirs.lower_bound_, 1e-10, "lower_bound_")
    # The same parameters score the same.
    sk_same = ours.to_sklearn()
    np.testing.assert_allclose(ours.score_samples(held_out), sk_same.score_samples(held_out), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(held_out), sk_same.predict_proba(held_out), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(held_out), sk_same.predict(held_out))
    assert ours.score(held_out) == pytest.approx(sk_same.score(held_out), rel=1e-12)
    assert ours.bic(held_out) == pytest.approx(sk_same.bic(held_out), rel=1e-12)
    assert ours.aic(held_out) == pytest.approx(sk_same.aic(held_out), rel=1e-12)
    # And the fits' scores agree.
    np.testing.assert_allclose(ours.score_samples(held_out), theirs.score_samples(held_out), rtol=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_from_sklearn_scores_as_sklearn(data, covariance_type):
    x, held_out = data
    sk = SkGaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(x)
    ours = gmm_stream.from_sklearn(sk)
    assert isinstance(ours, gmm_stream.GaussianMixture)
    assert ours.get_params()["covariance_type"] == covariance_type
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_
    np.testing.assert_allclose(ours.score_samples(held_out), sk.score_samples(held_out), rtol=1e-9)
    np.testing.assert_allclose(ours.precisions_cholesky_, sk.precisions_cholesky_, rtol=1e-12, atol=1e-14)
    back = ours.to_sklearn()
    np.testing.assert_array_equal(back.means_, sk.means_)
    np.testing.assert_allclose(back.score_samples(held_out), sk.score_samples(held_out), rtol=1e-12)


def test_partial_starts_replace_what_the_method_gives(data):
    """means_init alone: the weights and covariances come from the method (as in
    scikit-learn), and the fit starts at the given means."""
    x, _ = data
    means = x[:K] + 0.1
    one_step = gmm_stream.GaussianMixture(K, means_init=means, max_iter=0, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # max_iter=0 does not warn about convergence
        one_step.fit(x)
    np.testing.assert_array_equal(one_step.means_, means)
    assert one_step.n_iter_ == 0 and one_step.lower_bound_ == -np.inf
    same_seed = gmm_stream.GaussianMixture(K, max_iter=0, random_state=3).fit(x)
    np.testing.assert_array_equal(one_step.weights_, same_seed.weights_)
    np.testing.assert_array_equal(one_step.covariances_, same_seed.covariances_)


def test_warm_start_continues_like_scikit_learn(data):
    """A warm start measures the first change from the previous lower bound: a
    converged fit refitted stops after one iteration, as scikit-learn's does."""
    x, _ = data
    start = start_for("diag", x, seed=2)
    ours = gmm_stream.GaussianMixture(K, covariance_type="diag", warm_start=True, **start).fit(x)
    theirs = SkGaussianMixture(K, covariance_type="diag", warm_start=True, **start).fit(x)
    assert ours.converged_ and theirs.converged_
    ours.fit(x)
    theirs.fit(x)
    assert ours.n_iter_ == theirs.n_iter_ == 1
    assert_close(ours.means_, theirs.means_, 1e-8, "means_")


def test_convergence_warning_and_verbose_output(data, capsys):
    x, _ = data
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gmm_stream.GaussianMixture(K, max_iter=2, tol=0.0, random_state=0).fit(x)
    gmm_stream.GaussianMixture(K, n_init=2, verbose=2, verbose_interval=1, random_state=0).fit(x)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Initialization 1" in out
    assert "Iteration 1\t time lapse" in out and "ll change" in out
    assert out.count("Initialization converged: True") == 2
