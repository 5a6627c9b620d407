"""Shared fixtures: data sets, the gmm-stream binary, and helpers to run it."""

import json
import os
import pathlib
import subprocess

# scikit-learn's check_array_api_input (for estimators without array API support:
# dispatch on, numpy in, same results) runs only when SciPy's array API support is
# on, which must be set before SciPy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def mixture_sample(n, d, k, seed, spread=6.0, full=True):
    """n points from a seeded mixture of k components in d dimensions (random
    means `spread` apart, correlated covariances), and the labels."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=spread, size=(k, d))
    weights = rng.dirichlet(np.full(k, 5.0))
    labels = rng.choice(k, size=n, p=weights)
    x = np.empty((n, d))
    for j in range(k):
        a = rng.normal(size=(d, d)) * (0.4 if full else 0.0) + np.diag(rng.uniform(0.5, 1.5, d))
        idx = labels == j
        x[idx] = means[j] + rng.standard_normal((idx.sum(), d)) @ a.T
    return x, labels


@pytest.fixture(scope="session")
def gmm_stream_bin():
    """The gmm-stream binary: GMM_STREAM_BIN, else the repository's release or
    debug build. Its absence fails the tests that need it (never a silent skip)."""
    candidates = [os.environ.get("GMM_STREAM_BIN")] + [
        str(REPO / "target" / profile / "gmm-stream") for profile in ("release", "debug")
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail(
        "no gmm-stream binary: build it (cargo build --release) or set GMM_STREAM_BIN"
    )


def run_cli(binary, *args, stdin=None):
    """Runs the binary; returns stdout (bytes), failing the test on a non-zero exit."""
    proc = subprocess.run(
        [binary, *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=600,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    if proc.returncode != 0:
        pytest.fail(f"gmm-stream {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc.stdout


def write_csv(path, x):
    """Shortest round-trip decimal form of every value, as the CLI reads it back."""
    with open(path, "w") as f:
        for row in x:
            f.write(",".join(repr(float(v)) for v in row))
            f.write("\n")


def ndjson(text):
    return [json.loads(line) for line in text.decode().splitlines() if line.strip()]
