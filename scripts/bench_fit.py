#!/usr/bin/env python3
"""Times one batch-EM iteration of gmm-stream against scikit-learn on the same data.

Generates points from a random full-covariance mixture, writes them and a starting
model (weights, means, covariances) as raw little-endian f64 files, then
  * runs `cargo run --release --example bench_fit` (1 and 2 rayon threads), which
    times `gmm_stream::model::fit` per iteration, and
  * runs scikit-learn's GaussianMixture from the same start (weights_init,
    means_init, precisions_init) under threadpoolctl at 1 and 2 BLAS threads,
both with tol=0 and a fixed number of iterations. It reports seconds per EM
iteration (best of the repeats, and the median; CPU seconds too at one thread, which
a loaded machine does not inflate), the speed-up over scikit-learn at its best
thread count, the flop rate against the machine's peak, and how closely
the two fits agree (they run the same algorithm from the same start, so the lower
bounds and parameters should match to ~1e-12).

scikit-learn per-iteration time: `_initialize_parameters` (as fit does) to start
from the given parameters, then the exact loop body of `BaseMixture.fit_predict` (_e_step, _m_step,
_compute_lower_bound), timed per iteration. A full public `fit(max_iter=iters)` is
timed too, as a cross-check that includes initialisation and the final E-step.

Usage: scripts/bench_fit.py [--n 200000 --dim 16 --components 16 --iters 10]
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_problem(n, d, k, seed):
    """Data from a random mixture, and a deliberately rough start: K random points
    as means, the data covariance for every component, equal weights."""
    rng = np.random.default_rng(seed)
    true_means = rng.normal(0.0, 3.0, size=(k, d))
    chols = []
    for _ in range(k):
        a = rng.normal(size=(d, d)) / np.sqrt(d)
        chols.append(np.linalg.cholesky(a @ a.T + 0.3 * np.eye(d)))
    true_weights = rng.dirichlet(np.full(k, 5.0))
    labels = rng.choice(k, size=n, p=true_weights)
    z = rng.normal(size=(n, d))
    x = np.empty((n, d))
    for c in range(k):
        idx = labels == c
        x[idx] = true_means[c] + z[idx] @ chols[c].T
    means0 = x[rng.choice(n, size=k, replace=False)]
    cov0 = np.cov(x, rowvar=False)
    covs0 = np.repeat(cov0[None], k, axis=0)
    weights0 = np.full(k, 1.0 / k)
    return np.ascontiguousarray(x), weights0, means0, covs0


def run_ours(args, data_path, init_path, threads):
    cmd = [
        "cargo", "run", "--quiet", "--release", "--example", "bench_fit", "--",
        "--data", data_path, "--init", init_path,
        "--dim", str(args.dim), "--components", str(args.components),
        "--iters", str(args.iters), "--threads", str(threads),
        "--repeats", str(args.repeats), "--reg-covar", str(args.reg_covar),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads(out.stdout)
    # CPU seconds of the whole run (reading the data included) per iteration: on a
    # machine shared with other work, the figure that waiting for a core does not
    # inflate. Meaningful for comparisons at one thread.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res["cpu_per_iter"] = cpu / (res["iters"] * args.repeats)
    # The first iteration of the first repeat pays for page faults on fresh buffers.
    per_iter = [t for run in res["seconds_per_iteration"] for t in run[1:]]
    res["best"] = min(per_iter)
    res["median"] = statistics.median(per_iter)
    res["fit_total_per_iter"] = min(res["seconds_total"]) / res["iters"]
    return res


def sklearn_model(args, weights0, means0, covs0, max_iter):
    return GaussianMixture(
        n_components=args.components,
        covariance_type="full",
        tol=0.0,
        reg_covar=args.reg_covar,
        max_iter=max_iter,
        n_init=1,
        # The start is given; the cheapest init_params keeps its own work small
        # (weights/means/precisions_init override whatever it computes).
        init_params="random_from_data",
        weights_init=weights0,
        means_init=means0,
        precisions_init=np.linalg.inv(covs0),
        random_state=0,
    )


def run_sklearn(args, x, weights0, means0, covs0, threads):
    per_iter, cpu_per_iter, fit_totals = [], [], []
    with threadpool_limits(limits=threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for rep in range(args.repeats):
            gm = sklearn_model(args, weights0, means0, covs0, args.iters)
            gm._initialize_parameters(x, np.random.RandomState(0))
            bounds = []
            for _ in range(args.iters):
                t0, c0 = time.perf_counter(), time.process_time()
                log_prob_norm, log_resp = gm._e_step(x)
                gm._m_step(x, log_resp)
                bounds.append(gm._compute_lower_bound(log_resp, log_prob_norm))
                per_iter.append(time.perf_counter() - t0)
                cpu_per_iter.append(time.process_time() - c0)
            if rep == 0:
                full = sklearn_model(args, weights0, means0, covs0, args.iters)
                t0 = time.perf_counter()
                full.fit(x)
                fit_totals.append(time.perf_counter() - t0)
                assert np.allclose(full.lower_bounds_, bounds, rtol=0, atol=1e-12)
    return {
        "best": min(per_iter),
        "median": statistics.median(per_iter),
        "cpu_per_iter": statistics.median(cpu_per_iter),
        "fit_total_per_iter": min(fit_totals) / args.iters,
        "lower_bounds": [float(b) for b in full.lower_bounds_],
        "weights": full.weights_,
        "means": full.means_,
        "covariances": full.covariances_,
    }


def peak_gflops():
    """cores × GHz × double-precision flops per cycle per core, from /proc/cpuinfo.
    Flops per cycle assume two FMA units (2 × 2 × vector width), which Xeon server
    cores have; the AVX2 figure is the ceiling for code without AVX-512."""
    text = open("/proc/cpuinfo").read()
    cores = len(re.findall(r"^processor\s*:", text, re.M))
    mhz = float(re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M).group(1))
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
    ghz = mhz / 1000.0
    lanes = 8 if "avx512f" in flags else (4 if "avx2" in flags else 2)
    per_cycle = 2 * 2 * lanes
    return {
        "cores": cores,
        "ghz": ghz,
        "flops_per_cycle": per_cycle,
        "peak": cores * ghz * per_cycle,
        "peak_avx2": cores * ghz * 16,
        "model": re.search(r"^model name\s*:\s*(.*)$", text, re.M).group(1),
    }


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--components", type=int, default=16)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reg-covar", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    n, d, k = args.n, args.dim, args.components

    x, weights0, means0, covs0 = make_problem(n, d, k, args.seed)
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "--example", "bench_fit"],
        cwd=ROOT, check=True,
    )
    load = os.getloadavg()
    results = {"n": n, "dim": d, "components": k, "iters": args.iters, "load_before": load}
    with tempfile.TemporaryDirectory() as tmp:
        data_path = os.path.join(tmp, "x.f64")
        init_path = os.path.join(tmp, "init.f64")
        x.astype("<f8").tofile(data_path)
        np.concatenate([weights0, means0.ravel(), covs0.ravel()]).astype("<f8").tofile(init_path)
        for t in (1, 2):
            results[f"ours_{t}t"] = run_ours(args, data_path, init_path, t)
    for t in (1, 2):
        results[f"sklearn_{t}t"] = run_sklearn(args, x, weights0, means0, covs0, t)
    results["load_after"] = os.getloadavg()

    ours, skl = results["ours_2t"], results["sklearn_1t"]
    agreement = {
        "lower_bounds": rel(ours["lower_bounds"], skl["lower_bounds"]),
        "weights": rel(ours["weights"], skl["weights"]),
        "means": rel(ours["means"], np.asarray(skl["means"]).ravel()),
        "covariances": rel(np.asarray(ours["covariances"]).ravel(),
                           np.asarray(skl["covariances"]).ravel()),
        "ours_1t_vs_2t_identical": results["ours_1t"]["lower_bounds"] == ours["lower_bounds"]
        and results["ours_1t"]["covariances"] == ours["covariances"],
    }
    results["agreement"] = agreement

    cpu = peak_gflops()
    # Nominal gemm flops of one iteration, as a dense implementation (scikit-learn)
    # does them: whitening L⁻¹·(X − μ) and the scatter (X − m)ᵀ R (X − m), each
    # 2·d²·N per component. The triangular L⁻¹ and the symmetric scatter need only
    # d(d + 1)·N each, which is what gmm-stream executes.
    flops = 4.0 * d * d * n * k
    useful = 2.0 * d * (d + 1) * n * k
    results["cpu"] = cpu
    results["gflop_per_iteration_nominal"] = flops / 1e9
    results["gflop_per_iteration_triangular"] = useful / 1e9

    print(f"problem: N={n} d={d} K={k} full, {args.iters} iterations, tol=0")
    print(f"cpu: {cpu['model']}, {cpu['cores']} cores at {cpu['ghz']:.2f} GHz, "
          f"peak {cpu['peak']:.0f} GFLOP/s ({cpu['flops_per_cycle']} flops/cycle/core; "
          f"AVX2-only peak {cpu['peak_avx2']:.0f})")
    print(f"load average before/after: {load[0]:.2f} / {results['load_after'][0]:.2f}")
    print(f"flops per iteration: {flops / 1e9:.2f} G nominal (dense gemms), "
          f"{useful / 1e9:.2f} G triangular")
    print(f"{'':12}{'best s/iter':>12}{'median':>9}{'fit/iters':>10}"
          f"{'GFLOP/s nominal':>16}{'% peak':>7}{'% AVX2 peak':>12}{'GFLOP/s triang.':>16}")
    for name in ("ours_1t", "ours_2t", "sklearn_1t", "sklearn_2t"):
        r = results[name]
        gf = flops / r["best"] / 1e9
        print(f"{name:12}{r['best']:12.4f}{r['median']:9.4f}{r['fit_total_per_iter']:10.4f}"
              f"{gf:16.1f}{100 * gf / cpu['peak']:6.1f}%{100 * gf / cpu['peak_avx2']:11.1f}%"
              f"{useful / r['best'] / 1e9:16.1f}")
    print(f"CPU seconds per iteration at one thread: ours {results['ours_1t']['cpu_per_iter']:.4f}, "
          f"scikit-learn {results['sklearn_1t']['cpu_per_iter']:.4f} "
          f"(ratio {results['sklearn_1t']['cpu_per_iter'] / results['ours_1t']['cpu_per_iter']:.2f}x)")
    skl_best = min(results["sklearn_1t"]["best"], results["sklearn_2t"]["best"])
    ours_best = min(results["ours_1t"]["best"], results["ours_2t"]["best"])
    results["speedup_vs_sklearn_best"] = skl_best / ours_best
    print(f"speed-up, ours (best) vs scikit-learn at its best thread count: "
          f"{skl_best / ours_best:.2f}x  (2 threads: "
          f"{skl_best / results['ours_2t']['best']:.2f}x)")
    print("agreement with scikit-learn (max relative difference): "
          + ", ".join(f"{key} {val:.1e}" for key, val in agreement.items()
                      if not isinstance(val, bool))
          + f"; 1 vs 2 threads bit-identical: {agreement['ours_1t_vs_2t_identical']}")
    if args.json:
        def plain(o):
            return o.tolist() if isinstance(o, np.ndarray) else o
        with open(args.json, "w") as f:
            json.dump(results, f, default=plain, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
