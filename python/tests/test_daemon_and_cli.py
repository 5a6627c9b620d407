"""The package and the gmm-stream binary share models both ways: a daemon
snapshot loads and scores exactly as `gmm-stream score`, and partial_fit goes
on exactly as the daemon would; `fit --seed` and GaussianMixture(random_state)
make the same model; files saved from Python work in the CLI."""

import json

import numpy as np
import pytest

import gmm_stream
from conftest import mixture_sample, ndjson, run_cli, write_csv

# The estimator's settings, as the daemon's config and as the class's parameters.
K, D, BATCH = 3, 4, 512


def daemon_config(tmp, data, snapshot_format):
    config = tmp / "gmm.toml"
    config.write_text(
        f"""
[source]
kind = "file"
path = "{data}"
format = "csv"
dim = {D}

[model]
components = {K}
covariance_type = "full"

[estimator]
batch_size = {BATCH}
# Batches close on size only: a slow read must not cut one short.
batch_timeout_ms = 600000
warmup_points = 1500
seed = 7

[snapshot]
dir = "{tmp / 'snapshots'}"
every_points = 0
every_seconds = 0
format = "{snapshot_format}"

[http]
listen = ""
"""
    )
    return config


def newest_snapshot(tmp):
    return sorted((tmp / "snapshots").glob("snapshot-*"))[-1]


def python_estimator():
    return gmm_stream.OnlineGaussianMixture(
        K, batch_size=BATCH, warmup_points=1500, random_state=7
    )


@pytest.fixture(scope="module")
def points():
    x, _ = mixture_sample(30_000, D, K, seed=21, spread=4.0)
    return x


@pytest.mark.parametrize("snapshot_format", ["json", "bin"])
def test_a_daemon_snapshot_scores_exactly_as_gmm_stream_score(
    gmm_stream_bin, tmp_path, points, snapshot_format
):
    data = tmp_path / "points.csv"
    write_csv(data, points[:12_000])
    run_cli(gmm_stream_bin, "run", "--config", daemon_config(tmp_path, data, snapshot_format))
    snapshot = newest_snapshot(tmp_path)
    assert snapshot.suffix == "." + snapshot_format
    est = gmm_stream.load(snapshot)
    assert isinstance(est, gmm_stream.OnlineGaussianMixture)
    assert est.points_seen_ == 12_000

    probe = tmp_path / "probe.csv"
    write_csv(probe, points[20_000:22_000])
    records = ndjson(run_cli(gmm_stream_bin, "score", "--model", snapshot, "--input", probe))
    x = np.loadtxt(probe, delimiter=",", ndmin=2)
    log_density = est.score_samples(x)
    resp = est.predict_proba(x)
    labels = est.predict(x)
    anomalies = est.predict_anomaly(x)
    for i, r in enumerate(records):
        assert r["log_density"] == log_density[i]
        assert r["responsibilities"] == list(resp[i])
        assert r["cluster"] == labels[i]
        assert r["anomaly"] == bool(anomalies[i])
    assert len(records) == len(x)


def test_partial_fit_continues_a_snapshot_exactly_as_the_daemon(gmm_stream_bin, tmp_path, points):
    first, rest = points[:10_000], points[10_000:25_000]
    data = tmp_path / "points.csv"
    write_csv(data, first)
    config = daemon_config(tmp_path, data, "json")
    run_cli(gmm_stream_bin, "run", "--config", config)
    est = gmm_stream.load(newest_snapshot(tmp_path))
    est.set_params(batch_size=BATCH)
    est.partial_fit(rest)

    # The daemon resumes the same file, grown by the rest of the stream.
    with open(data, "a") as f:
        for row in rest:
            f.write(",".join(repr(float(v)) for v in row) + "\n")
    run_cli(gmm_stream_bin, "run", "--config", config)
    daemon = json.loads(newest_snapshot(tmp_path).read_text())
    assert daemon["points_seen"] == est.points_seen_ == 25_000
    assert daemon["model_version"] == est.model_version_
    np.testing.assert_array_equal(np.array(daemon["weights"]), est.weights_)
    np.testing.assert_array_equal(np.array(daemon["means"]), est.means_)
    np.testing.assert_array_equal(np.array(daemon["covariances"]), est.covariances_)
    assert daemon["anomaly_threshold"] == est.anomaly_threshold_

    # And fit, one pass over the whole stream, is a fresh daemon's run over it.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run_cli(gmm_stream_bin, "run", "--config", daemon_config(fresh, data, "json"))
    daemon = json.loads(newest_snapshot(fresh).read_text())
    whole = python_estimator().fit(points[:25_000])
    np.testing.assert_array_equal(np.array(daemon["means"]), whole.means_)
    np.testing.assert_array_equal(np.array(daemon["covariances"]), whole.covariances_)
    assert daemon["anomaly_threshold"] == whole.anomaly_threshold_


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_fit_with_a_seed_is_gmm_stream_fit_with_that_seed(gmm_stream_bin, tmp_path, points, covariance_type):
    x = points[:5000]
    data = tmp_path / "points.csv"
    write_csv(data, x)
    out = tmp_path / "cli.json"
    run_cli(
        gmm_stream_bin, "fit", "-q", "-i", data, "-k", K, "--covariance-type", covariance_type,
        "--n-init", 2, "--seed", 42, "-o", out,
    )
    cli = gmm_stream.load(out)
    assert isinstance(cli, gmm_stream.GaussianMixture)
    assert cli.get_params()["n_init"] == 2 and cli.get_params()["random_state"] == 42
    ours = gmm_stream.GaussianMixture(K, covariance_type=covariance_type, n_init=2, random_state=42).fit(x)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(cli, name), err_msg=name)
    assert ours.n_iter_ == cli.n_iter_ and ours.converged_ == cli.converged_
    assert ours.lower_bound_ == cli.lower_bound_


@pytest.mark.parametrize("suffix", [".json", ".model"])
def test_a_model_saved_from_python_works_in_the_cli(gmm_stream_bin, tmp_path, points, suffix):
    x = points[:3000]
    gm = gmm_stream.GaussianMixture(K, covariance_type="diag", random_state=1).fit(x)
    path = tmp_path / f"model{suffix}"
    gm.save(path)
    summary = json.loads(run_cli(gmm_stream_bin, "inspect", "--json", path))
    assert summary["n_components"] == K and summary["estimator"]["kind"] == "batch"
    assert summary["estimator"]["n_iter"] == gm.n_iter_
    probe = tmp_path / "probe.csv"
    write_csv(probe, points[-500:])
    records = ndjson(run_cli(gmm_stream_bin, "score", "--model", path, "--input", probe))
    np.testing.assert_array_equal([r["log_density"] for r in records], gm.score_samples(np.loadtxt(probe, delimiter=",")))
    # The CLI's sample is the package's, seed for seed.
    cli_points = np.loadtxt(
        run_cli(gmm_stream_bin, "sample", "--model", path, "--n", 50, "--seed", 5).decode().splitlines(),
        delimiter=",",
    )
    drawn, _ = gm.set_params(random_state=5).sample(50)
    np.testing.assert_array_equal(cli_points, drawn)
    # A fit started from it (--init-model) reads it.
    out = tmp_path / "refit.json"
    run_cli(gmm_stream_bin, "fit", "-q", "-i", probe, "-k", K, "--covariance-type", "diag", "--init-model", path, "-o", out)
    assert gmm_stream.load(out).n_iter_ >= 1


def test_a_sklearn_model_exported_as_minimal_json_works_in_the_cli(gmm_stream_bin, tmp_path, points):
    """The mixture fields alone, written by hand from scikit-learn's attributes."""
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    sk = SkGaussianMixture(K, covariance_type="tied", random_state=0).fit(points[:3000])
    path = tmp_path / "sk.json"
    path.write_text(
        json.dumps(
            {
                "format": "gmm-stream.model",
                "version": 1,
                "covariance_type": "tied",
                "n_components": K,
                "n_features": D,
                "weights": sk.weights_.tolist(),
                "means": sk.means_.tolist(),
                "covariances": sk.covariances_.tolist(),
            }
        )
    )
    loaded = gmm_stream.load(path)
    assert isinstance(loaded, gmm_stream.GaussianMixture)
    assert not hasattr(loaded, "converged_")
    probe = tmp_path / "probe.csv"
    write_csv(probe, points[-300:])
    x = np.loadtxt(probe, delimiter=",")
    records = ndjson(run_cli(gmm_stream_bin, "score", "--model", path, "--input", probe))
    cli = np.array([r["log_density"] for r in records])
    np.testing.assert_array_equal(cli, loaded.score_samples(x))
    np.testing.assert_allclose(cli, sk.score_samples(x), rtol=1e-9)
    # Saved again, it stays minimal (no estimator is made up).
    again = tmp_path / "again.json"
    loaded.save(again)
    assert "estimator" not in json.loads(again.read_text())
