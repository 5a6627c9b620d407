#!/usr/bin/env python3
"""The Python package's speed: GaussianMixture.fit against scikit-learn, and
OnlineGaussianMixture.partial_fit against `gmm-stream run`, on the same data.

    scripts/bench_python.py [--n 200000 --dim 16 --components 16 --iters 10]
                            [--stream-points 2000000]

Needs the installed package (`pip install ./python`) and the release binary
(`cargo build --release`; bench_run.py runs target/release/gmm-stream).

1. Batch EM, d = 16, K = 16, N = 200 000 full covariances, from the same rough
   start (weights_init, means_init, precisions_init; scripts/bench_fit.py's
   problem), tol = 0: seconds per EM iteration as
   (fit(max_iter = 1 + I) − fit(max_iter = 1)) / I, which leaves out the input
   checks and the final E-step that both fits make. gmm_stream at 1 and 2 rayon
   threads (a subprocess each: rayon reads RAYON_NUM_THREADS once), scikit-learn
   at 1 and 2 BLAS threads (threadpoolctl), with its own loop timed as in
   bench_fit.py. Both run the same algorithm: the lower bounds are compared.
2. Streaming: the same f64le file of --stream-points points (d = 16, K = 16),
   `gmm-stream run` on it as scripts/bench_run.py runs it (batch_size 4096, no
   scores, no HTTP, a snapshot every quarter) against partial_fit of the same
   points in chunks of 100 000 with the same settings, both as points per second
   of wall time (best of --repeats).
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

ROOT = Path(__file__).resolve().parent.parent


def script(name):
    """Another benchmark script of scripts/, as a module (its problem generators and
    runners serve here too)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ours_per_iteration(problem_path, k, iters, repeats, threads):
    """Runs `time_fit` below in a subprocess with `threads` rayon threads."""
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, __file__, "--time-fit", str(problem_path), str(k), str(iters), str(repeats)],
        env=env, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def time_fit(problem_path, k, iters, repeats):
    import gmm_stream

    data = np.load(problem_path)
    x, w0, m0, c0 = data["x"], data["w0"], data["m0"], data["c0"]

    def fit(max_iter):
        gm = gmm_stream.GaussianMixture(
            k, tol=0.0, max_iter=max_iter, weights_init=w0, means_init=m0,
            precisions_init=np.linalg.inv(c0), random_state=0,
        )
        t0 = time.perf_counter()
        gm.fit(x)
        return time.perf_counter() - t0, gm

    best_one, best_many = float("inf"), float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(repeats):
            best_one = min(best_one, fit(1)[0])
            t, gm = fit(1 + iters)
            best_many = min(best_many, t)
    per_iter = (best_many - best_one) / iters
    print(json.dumps({"per_iter": per_iter, "lower_bounds": gm.lower_bounds_}))


def partial_fit_seconds(x, k):
    import gmm_stream

    est = gmm_stream.OnlineGaussianMixture(k, batch_size=4096, random_state=0)
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(x), 100_000):
        est.partial_fit(x[start:start + 100_000])
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--components", type=int, default=16)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stream-points", type=int, default=2_000_000)
    p.add_argument("--time-fit", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.time_fit:
        path, k, iters, repeats = args.time_fit
        return time_fit(path, int(k), int(iters), int(repeats))

    bench = script("bench_fit")
    n, d, k = args.n, args.dim, args.components
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        x, w0, m0, c0 = bench.make_problem(n, d, k, 0)
        np.savez(tmp / "problem.npz", x=x, w0=w0, m0=m0, c0=c0)
        ours = {t: ours_per_iteration(tmp / "problem.npz", k, args.iters, args.repeats, t) for t in (1, 2)}
        sk_args = argparse.Namespace(components=k, reg_covar=1e-6, iters=args.iters, repeats=args.repeats)
        sk = {t: bench.run_sklearn(sk_args, x, w0, m0, c0, t) for t in (1, 2)}
        print(f"batch EM, N={n} d={d} K={k} full, tol=0, seconds per iteration (best of {args.repeats}):")
        for t in (1, 2):
            print(f"  gmm_stream.GaussianMixture, {t} thread(s): {ours[t]['per_iter']:.4f}")
        for t in (1, 2):
            print(f"  sklearn GaussianMixture,    {t} thread(s): {sk[t]['best']:.4f}")
        best_ours = min(r["per_iter"] for r in ours.values())
        best_sk = min(r["best"] for r in sk.values())
        bounds = sk[1]["lower_bounds"]
        agree = np.max(np.abs(np.subtract(ours[2]["lower_bounds"][: len(bounds)], bounds)))
        print(f"  speed-up over scikit-learn at its best thread count: {best_sk / best_ours:.1f}x "
              f"(lower bounds agree to {agree:.1e})")

        run = script("bench_run")
        data = tmp / "stream.f64"
        m = args.stream_points
        run.generate(data, m, d, k)
        xs = np.fromfile(data, dtype="<f8").reshape(m, d)
        daemon_runs = [run.run_daemon(data, m, d, k, tmp) for _ in range(args.repeats)]
        daemon = min(r["wall_seconds"] for r in daemon_runs)
        daemon_cpu = min(r["cpu_seconds"] for r in daemon_runs)
        online_runs = [partial_fit_seconds(xs, k) for _ in range(args.repeats)]
        online = min(r[0] for r in online_runs)
        online_cpu = min(r[1] for r in online_runs)
        print(f"streaming, {m} points d={d} K={k}, batches of 4096 (best of {args.repeats}):")
        print(f"  gmm-stream run:                    {m / daemon:,.0f} points/s "
              f"({daemon:.2f} s wall, {daemon_cpu:.2f} s CPU)")
        print(f"  OnlineGaussianMixture.partial_fit: {m / online:,.0f} points/s "
              f"({online:.2f} s wall, {online_cpu:.2f} s CPU)")
        print(f"  partial_fit / run: {daemon / online:.2f} by wall time, "
              f"{daemon_cpu / online_cpu:.2f} per CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
