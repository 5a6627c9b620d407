"""What goes in: float32 and Fortran-ordered input read in place (the same
results as C-ordered float64), pickled estimators, bad input as Python
exceptions with scikit-learn's messages, bad files refused with a reason, and the
interpreter lock released while the core works."""

import pickle
import threading
import time

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

import gmm_stream
from conftest import mixture_sample


@pytest.fixture(scope="module")
def x():
    points, _ = mixture_sample(4000, 3, 3, seed=2, spread=5.0)
    return points


def test_float32_and_fortran_order_give_the_float64_results(x):
    x32 = x.astype(np.float32)
    widened = x32.astype(np.float64)
    ref = gmm_stream.GaussianMixture(3, random_state=0).fit(widened)
    for variant in (x32, np.asfortranarray(x32), np.asfortranarray(widened), widened[::1, :]):
        gm = gmm_stream.GaussianMixture(3, random_state=0).fit(variant)
        np.testing.assert_array_equal(gm.means_, ref.means_)
        np.testing.assert_array_equal(gm.score_samples(variant), ref.score_samples(widened))
        np.testing.assert_array_equal(gm.predict_proba(variant), ref.predict_proba(widened))
    # Strided views (every other row, a column subset) too.
    view = np.asfortranarray(np.hstack([widened, widened]))[::2, :3]
    np.testing.assert_array_equal(ref.score_samples(view), ref.score_samples(np.ascontiguousarray(view)))
    online = gmm_stream.OnlineGaussianMixture(3, random_state=0)
    online.partial_fit(x32)
    assert online.points_seen_ == len(x32)
    # Blocks of the scoring path (65 536 points) join seamlessly.
    big = np.repeat(x32, 40, axis=0)
    np.testing.assert_array_equal(ref.score_samples(big), np.repeat(ref.score_samples(widened), 40))


def test_a_pickled_estimator_scores_identically(x):
    for est in (
        gmm_stream.GaussianMixture(3, covariance_type="spherical", random_state=0).fit(x),
        gmm_stream.OnlineGaussianMixture(3, warmup_points=500, random_state=0).fit(x),
    ):
        copy = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(copy.score_samples(x), est.score_samples(x))
        np.testing.assert_array_equal(copy.predict_proba(x), est.predict_proba(x))
        assert copy.score(x) == est.score(x)


@pytest.mark.parametrize("cls", [gmm_stream.GaussianMixture, gmm_stream.OnlineGaussianMixture])
def test_bad_points_raise_value_errors_with_scikit_learns_messages(cls, x):
    est = cls(3, random_state=0)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.fit(np.full((10, 2), np.inf))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        est.fit(x[:, 0])
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        est.fit(x[:1])
    with pytest.raises(ValueError, match="Expected n_samples >= n_components but got n_components = 3, n_samples = 2"):
        est.fit(x[:2])
    est.fit(x)
    with pytest.raises(ValueError, match="X has 2 features, but .* is expecting 3 features"):
        est.predict(x[:, :2])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.score_samples(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="Complex data not supported"):
        est.score_samples(x.astype(complex))
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        est.sample(0)


def test_bad_parameters_raise_scikit_learns_errors(x):
    with pytest.raises(InvalidParameterError, match="'n_components' parameter of GaussianMixture must be an int in the range \\[1, inf\\)"):
        gmm_stream.GaussianMixture(0).fit(x)
    with pytest.raises(InvalidParameterError, match="covariance_type"):
        gmm_stream.GaussianMixture(covariance_type="round").fit(x)
    with pytest.raises(ValueError, match="'weights' should be normalized"):
        gmm_stream.GaussianMixture(2, weights_init=[0.5, 0.6]).fit(x)
    with pytest.raises(ValueError, match="'means' should have the shape of \\(2, 3\\)"):
        gmm_stream.GaussianMixture(2, means_init=np.zeros((2, 2))).fit(x)
    with pytest.raises(ValueError, match="'full precision' should be symmetric, positive-definite"):
        gmm_stream.GaussianMixture(1, precisions_init=[-np.eye(3)]).fit(x)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        gmm_stream.GaussianMixture(2, reg_covar=0.0, random_state=0).fit(np.repeat([[1.0, 2.0], [3.0, 4.0]], 10, axis=0))


def test_attributes_that_are_not_a_mixture_are_refused(x):
    gm = gmm_stream.GaussianMixture(3, random_state=0).fit(x)
    gm.weights_ = gm.weights_ * 2
    with pytest.raises(ValueError, match="weights sum to 2"):
        gm.score_samples(x)


def test_bad_files_are_refused_with_the_reason(tmp_path, x):
    gm = gmm_stream.GaussianMixture(2, random_state=0).fit(x)
    good = tmp_path / "m.bin"
    gm.save(good)
    data = good.read_bytes()
    cases = {
        "truncated.bin": (data[:-9], "truncated"),
        "corrupted.bin": (data[:40] + bytes([data[40] ^ 1]) + data[41:], "checksum"),
        "text.txt": (b"hello", "not a gmm-stream model file"),
        "half.json": (b'{"format": "gmm-stream.model", "version": 1}', "missing field"),
        "future.json": (
            b'{"format": "gmm-stream.model", "version": 9, "covariance_type": "full", '
            b'"n_components": 1, "n_features": 1, "weights": [1], "means": [[0]], "covariances": [[[1]]]}',
            "version 9",
        ),
        "indefinite.json": (
            b'{"format": "gmm-stream.model", "version": 1, "covariance_type": "spherical", '
            b'"n_components": 1, "n_features": 1, "weights": [1], "means": [[0]], "covariances": [-1]}',
            "positive definite",
        ),
    }
    for name, (content, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=reason) as e:
            gmm_stream.load(path)
        assert name in str(e.value)
    with pytest.raises(FileNotFoundError):
        gmm_stream.load(tmp_path / "missing.json")
    with pytest.raises(TypeError, match="from_sklearn takes"):
        gmm_stream.from_sklearn(gm)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_interpreter_lock_is_released_while_fitting():
    """Another Python thread runs while a fit works in the core."""
    big, _ = mixture_sample(200_000, 16, 8, seed=1)
    gm = gmm_stream.GaussianMixture(8, max_iter=15, tol=0.0, random_state=0)
    done = threading.Event()
    ticks = 0

    def fit():
        gm.fit(big)
        done.set()

    worker = threading.Thread(target=fit)
    started = time.perf_counter()
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - started
    # Held for the whole fit, the lock would let this loop run a handful of times.
    assert elapsed > 0.2, "the fit was too quick to tell"
    assert ticks > 0.2 * elapsed / 0.001 * 0.1, (ticks, elapsed)
