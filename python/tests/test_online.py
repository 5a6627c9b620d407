"""OnlineGaussianMixture: partial_fit over a stream reaches batch EM, fit is one
pass of partial_fit, the warm-up, anomalies, and exact continuation through
pickling and snapshots."""

import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import gmm_stream
from conftest import mixture_sample


@pytest.fixture(scope="module")
def stream():
    """A stationary stream of 200 000 points, d = 8, K = 6."""
    x, _ = mixture_sample(200_000, 8, 6, seed=11, spread=5.0)
    return x


@pytest.mark.parametrize(
    "schedule", [dict(schedule="stepwise"), dict(schedule="decay", half_life=float("inf"))]
)
def test_partial_fit_over_100_chunks_ends_near_batch_em(stream, schedule):
    online = gmm_stream.OnlineGaussianMixture(6, random_state=0, **schedule)
    for chunk in np.array_split(stream, 100):
        online.partial_fit(chunk)
    assert online.points_seen_ == len(stream)
    batch = gmm_stream.GaussianMixture(6, n_init=3, random_state=0).fit(stream)
    gap = batch.score(stream) - online.score(stream)
    assert gap < 0.01, f"online EM is {gap:.4f} nats/point below batch EM"
    assert online.model_version_ > 100


def test_fit_is_one_pass_of_partial_fit(stream):
    x = stream[:20_000]
    params = dict(n_components=6, covariance_type="diag", batch_size=500, random_state=4)
    fitted = gmm_stream.OnlineGaussianMixture(**params).fit(x)
    streamed = gmm_stream.OnlineGaussianMixture(**params)
    for chunk in np.split(x, 8):  # chunks of 2500: whole batches of 500
        streamed.partial_fit(chunk)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(fitted, name), getattr(streamed, name))
    assert fitted.model_version_ == streamed.model_version_
    assert fitted.anomaly_threshold_ == streamed.anomaly_threshold_
    # fit starts afresh: a second fit on the same points is the same model.
    again = fitted.fit(x)
    np.testing.assert_array_equal(again.means_, streamed.means_)


def test_no_model_during_the_warm_up():
    x, _ = mixture_sample(3000, 2, 2, seed=3)
    est = gmm_stream.OnlineGaussianMixture(2, warmup_points=1000, random_state=0)
    est.partial_fit(x[:600])
    assert est.points_seen_ == 0 and est.n_features_in_ == 2
    with pytest.raises(NotFittedError, match="warming up \\(600 of 1000 points"):
        est.predict(x[:5])
    with pytest.raises(ValueError, match="X has 3 features"):
        est.partial_fit(np.ones((10, 3)))
    est.partial_fit(x[600:1200])
    assert est.points_seen_ == 1200
    assert est.predict(x[:5]).shape == (5,)
    # fit on fewer points than the warm-up starts the model from all of them.
    short = gmm_stream.OnlineGaussianMixture(2, warmup_points=1000, random_state=0).fit(x[:300])
    assert short.points_seen_ == 300


def test_outliers_are_flagged_and_trimmed():
    points, _ = mixture_sample(65_000, 3, 3, seed=8, spread=4.0)
    x, clean = points[:60_000].copy(), points[60_000:]
    rng = np.random.default_rng(1)
    outliers = rng.uniform(-200, 200, size=(600, 3))
    at = rng.choice(len(x), len(outliers), replace=False)
    x[at] = outliers
    est = gmm_stream.OnlineGaussianMixture(3, anomaly_quantile=0.01, random_state=0)
    for chunk in np.array_split(x, 30):
        est.partial_fit(chunk)
    assert est.anomaly_threshold_ is not None
    assert est.n_anomalies_ >= 500
    flagged = est.predict_anomaly(outliers)
    assert flagged.mean() > 0.99
    assert est.predict_anomaly(clean).mean() < 0.03
    # Trimmed, the outliers did not inflate the covariances.
    kept = gmm_stream.OnlineGaussianMixture(3, anomaly_quantile=0.01, trim_anomalies=False, random_state=0)
    for chunk in np.array_split(x, 30):
        kept.partial_fit(chunk)
    assert est.score(clean) > kept.score(clean)


@pytest.mark.parametrize("at", [500, 7000])
def test_a_pickled_estimator_continues_exactly(stream, at):
    """Pickled during the warm-up or after it, the copy goes on exactly as the
    original."""
    x = stream[:15_000]
    est = gmm_stream.OnlineGaussianMixture(6, warmup_points=2000, random_state=2)
    est.partial_fit(x[:at])
    copy = pickle.loads(pickle.dumps(est))
    for part in (x[at:10_000], x[10_000:]):
        est.partial_fit(part)
        copy.partial_fit(part)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(est, name), getattr(copy, name))
    assert est.anomaly_threshold_ == copy.anomaly_threshold_
    np.testing.assert_array_equal(est.score_samples(x[:1000]), copy.score_samples(x[:1000]))


@pytest.mark.parametrize("suffix", [".json", ".bin"])
def test_saved_and_loaded_it_continues_exactly(stream, tmp_path, suffix):
    x = stream[:12_000]
    est = gmm_stream.OnlineGaussianMixture(6, covariance_type="tied", batch_size=256, random_state=9)
    est.partial_fit(x[:6000])
    path = tmp_path / f"online{suffix}"
    est.save(path)
    loaded = gmm_stream.load(path)
    assert isinstance(loaded, gmm_stream.OnlineGaussianMixture)
    assert loaded.get_params()["covariance_type"] == "tied"
    assert loaded.get_params()["random_state"] == 9
    assert loaded.points_seen_ == 6000 and loaded.model_version_ == est.model_version_
    loaded.set_params(batch_size=256)
    est.partial_fit(x[6000:])
    loaded.partial_fit(x[6000:])
    np.testing.assert_array_equal(est.means_, loaded.means_)
    np.testing.assert_array_equal(est.covariances_, loaded.covariances_)
    assert est.anomaly_threshold_ == loaded.anomaly_threshold_


def test_parameters_are_checked_when_fitting():
    x = np.random.default_rng(0).normal(size=(100, 2))
    for bad in [dict(schedule="sometimes"), dict(stepwise_alpha=0.4), dict(anomaly_quantile=1.5), dict(batch_size=0)]:
        with pytest.raises(ValueError):
            gmm_stream.OnlineGaussianMixture(**bad).fit(x)
    with pytest.raises(ValueError, match="warmup_points"):
        gmm_stream.OnlineGaussianMixture(5, warmup_points=3).partial_fit(x)


def test_online_variational_inference_chooses_the_components_and_continues_exactly(tmp_path):
    """inference='variational' (the daemon's estimator.inference): with room for
    eight components on a stream of three clusters, three carry the weight; a
    snapshot and a pickle continue it exactly."""
    x, _ = mixture_sample(40_000, 2, 3, seed=17, spread=8.0)
    est = gmm_stream.OnlineGaussianMixture(
        8, inference="variational", batch_size=500, random_state=1
    )
    est.partial_fit(x[:20_000])
    path = tmp_path / "variational.bin"
    est.save(path)
    loaded = gmm_stream.load(path)
    assert loaded.get_params()["inference"] == "variational"
    loaded.set_params(batch_size=500)
    copy = pickle.loads(pickle.dumps(est))
    for e in (est, loaded, copy):
        e.partial_fit(x[20_000:])
    assert (est.weights_ > 0.05).sum() == 3
    for other in (loaded, copy):
        np.testing.assert_array_equal(other.weights_, est.weights_)
        np.testing.assert_array_equal(other.means_, est.means_)
