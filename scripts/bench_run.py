#!/usr/bin/env python3
"""End-to-end throughput of `gmm-stream run` against scikit-learn's EM.

    scripts/bench_run.py [--points N] [--dim 16] [--components 16] [--workdir DIR]
                         [--inference em|variational]

1. Generates an f64le file of N points (default 10 million) from a random mixture
   of K full-covariance Gaussians in d dimensions (default 16 and 16), once per
   workdir (reused when present).
2. Runs the release binary: `gmm-stream run` on the file, batch_size 4096, scores
   off, snapshots only every quarter of the file, no HTTP. Measures wall and CPU
   time, samples the resident memory (/proc/PID/status) over the run and reports
   it at 10 %, 50 % and 90 % of the run, and the peak.
3. Runs the online EM alone (examples/partial_fit_throughput.rs: partial_fit on
   in-memory batches of 4096) to show what the pipeline around it costs.
4. Times scikit-learn's GaussianMixture on a sample (200 000 points): EM
   iterations with tol=0 from a fixed start, at 1 and 2 BLAS/OpenMP threads
   (threadpoolctl). The per-iteration time is the difference between a fit of
   1 + I iterations and one of 1, divided by I, so that sklearn's initialisation
   and its final E-step are not counted. Reported as point-iterations per second.
   One daemon point costs one E-step and its share of an M-step: one point-iteration.

Prints the numbers and the ratio ours / best sklearn, both by wall time and per
CPU-second (the process's user + system time, all threads): on a shared machine
the wall clock says as much about the neighbours as about the code, the CPU time
what the work cost. Every timing is repeated (--repeats, default 3) and the best
kept; the load average is printed with the results.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def log(msg):
    print(f"bench_run: {msg}", file=sys.stderr, flush=True)


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def generate(path, n, d, k, seed=7):
    """A random mixture: means in [-6, 6]^d, covariances A·Aᵀ/d + 0.3·I."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-6, 6, size=(k, d))
    factors = []
    for _ in range(k):
        a = rng.normal(size=(d, d))
        cov = a @ a.T / d + 0.3 * np.eye(d)
        factors.append(np.linalg.cholesky(cov))
    weights = rng.dirichlet(np.full(k, 5.0))
    chunk = 1_000_000
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        done = 0
        while done < n:
            m = min(chunk, n - done)
            labels = rng.choice(k, size=m, p=weights)
            z = rng.normal(size=(m, d))
            x = np.empty((m, d))
            for j in range(k):
                idx = labels == j
                x[idx] = z[idx] @ factors[j].T + means[j]
            x.astype("<f8").tofile(out)
            done += m
    tmp.rename(path)


def build():
    log("building the release binary and example")
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "gmm-stream",
         "--example", "partial_fit_throughput"],
        cwd=ROOT, check=True)


def rss_kib(pid):
    """(VmRSS, VmHWM) of a live process, in KiB; None once it is gone."""
    try:
        fields = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0])
        return fields.get("VmRSS"), fields.get("VmHWM")
    except (FileNotFoundError, ProcessLookupError):
        return None


def run_daemon(data, n, d, k, workdir, inference):
    snapshots = workdir / "snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    config = workdir / "bench.toml"
    config.write_text(f"""
[source]
kind = "file"
path = "{data}"
format = "f64le"
dim = {d}

[model]
components = {k}

[estimator]
batch_size = 4096
batch_timeout_ms = 3600000
inference = "{inference}"

[snapshot]
dir = "{snapshots}"
every_points = {max(n // 4, 1)}
every_seconds = 0.0
keep = 2

[scores]
sink = "none"

[http]
listen = ""

[log]
format = "json"
status_every_seconds = 1.0
""")
    stderr_path = workdir / "daemon.log"
    exe = ROOT / "target" / "release" / "gmm-stream"
    samples = []  # (seconds since start, VmRSS KiB)
    with open(stderr_path, "w") as err:
        started = time.monotonic()
        child = subprocess.Popen([exe, "run", "--config", config],
                                 stdout=subprocess.DEVNULL, stderr=err)
        peak = [0]

        def sample():
            while True:
                r = rss_kib(child.pid)
                if r is None or r[0] is None:
                    return
                samples.append((time.monotonic() - started, r[0]))
                peak[0] = max(peak[0], r[1] or 0)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        sampler.join(timeout=1)
    if child.returncode != 0:
        sys.exit(f"the daemon failed ({child.returncode}); see {stderr_path}")
    rates = []
    for line in stderr_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = entry.get("fields", {})
        if fields.get("message") == "status":
            rates.append(float(fields["points_per_second"]))
    def rss_at(fraction):
        t = fraction * wall
        best = min(samples, key=lambda s: abs(s[0] - t)) if samples else (0, 0)
        return best[1] / 1024
    return {
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "points_per_second": n / wall,
        # Status lines after the first (which includes the warm-up), before the last.
        "status_rates": rates,
        "rss_mib": {f"{int(f * 100)}%": rss_at(f) for f in (0.1, 0.5, 0.9)},
        # VmHWM, not the rusage maximum: that one counts this Python process's
        # memory, which the child shared between fork and exec.
        "peak_rss_mib": peak[0] / 1024,
        "rss_samples": len(samples),
    }


def run_kernel(data, n, d, k):
    exe = ROOT / "target" / "release" / "examples" / "partial_fit_throughput"
    points = min(n, 2_000_000)
    out = subprocess.run(
        [exe, "--data", data, "--dim", str(d), "--components", str(k),
         "--batch", "4096", "--points", str(points)],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def run_sklearn(data, d, k, sample, iters, repeats):
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    x = np.fromfile(data, dtype="<f8", count=sample * d).reshape(-1, d)
    rng = np.random.default_rng(0)
    # A fixed start: K points of the sample as means, the sample's covariance.
    means = x[rng.choice(len(x), size=k, replace=False)]
    cov = np.cov(x, rowvar=False) + 1e-6 * np.eye(d)
    precision = np.linalg.inv(cov)
    precisions = np.repeat(precision[None], k, axis=0)
    weights = np.full(k, 1.0 / k)

    def fit_seconds(max_iter):
        gm = GaussianMixture(
            n_components=k, covariance_type="full", tol=0.0, max_iter=max_iter,
            reg_covar=1e-6, init_params="random_from_data",
            weights_init=weights, means_init=means, precisions_init=precisions,
            random_state=0)
        started, cpu_started = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "did not converge": tol = 0 is meant
            gm.fit(x)
        return time.perf_counter() - started, time.process_time() - cpu_started

    results = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            base = [fit_seconds(1) for _ in range(repeats)]
            full = [fit_seconds(1 + iters) for _ in range(repeats)]
        # Best wall and best CPU time, each taken separately.
        per_iter = max(min(f[0] for f in full) - min(b[0] for b in base), 1e-9) / iters
        cpu_per_iter = max(min(f[1] for f in full) - min(b[1] for b in base), 1e-9) / iters
        results[threads] = {
            "seconds_per_iteration": per_iter,
            "cpu_seconds_per_iteration": cpu_per_iter,
            "point_iterations_per_second": len(x) / per_iter,
            "point_iterations_per_cpu_second": len(x) / cpu_per_iter,
        }
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=10_000_000)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--components", type=int, default=16)
    p.add_argument("--sample", type=int, default=200_000,
                   help="points of the sklearn sample")
    p.add_argument("--iters", type=int, default=5, help="sklearn EM iterations timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", type=Path,
                   default=Path(tempfile.gettempdir()) / "gmm-stream-bench")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--inference", choices=["em", "variational"], default="em",
                   help="the daemon's estimator.inference (model.components is then the largest K)")
    args = p.parse_args()
    n, d, k = args.points, args.dim, args.components
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"points-{n}-{d}-{k}.f64"
    if not args.no_build:
        build()
    if not data.exists():
        log(f"generating {n} points (d = {d}, K = {k}) into {data}")
        generate(data, n, d, k)
    log(f"load average before: {load()}")

    daemon_runs = []
    for r in range(args.repeats):
        log(f"daemon run {r + 1}/{args.repeats} (load {load()})")
        daemon_runs.append(run_daemon(data, n, d, k, args.workdir, args.inference))
    daemon = max(daemon_runs, key=lambda r: r["points_per_second"])
    kernel_runs = [run_kernel(data, n, d, k) for _ in range(args.repeats)]
    kernel = max(kernel_runs, key=lambda r: r["points_per_second"])
    sk = None
    if not args.skip_sklearn:
        log(f"scikit-learn on {args.sample} points (load {load()})")
        sk = run_sklearn(data, d, k, min(args.sample, n), args.iters, args.repeats)
    log(f"load average after: {load()}")

    print(f"gmm-stream run ({args.inference}), {n} points, d = {d}, K = {k}, batch 4096, "
          f"{os.cpu_count()} CPUs, load average now {load()}")
    for i, r in enumerate(daemon_runs):
        rates = r["status_rates"][1:-1] or r["status_rates"]
        median = float(np.median(rates)) if rates else float("nan")
        print(f"  run {i + 1}: {r['wall_seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU: "
              f"{r['points_per_second']:,.0f} points/s overall, status median "
              f"{median:,.0f} points/s, {n / r['cpu_seconds']:,.0f} points per CPU-second")
        rss = ", ".join(f"{key} {v:.0f} MiB" for key, v in r["rss_mib"].items())
        print(f"         RSS at {rss}; peak {r['peak_rss_mib']:.0f} MiB "
              f"({r['rss_samples']} samples)")
    daemon_cpu = max(n / r["cpu_seconds"] for r in daemon_runs)
    kernel_cpu = max(r["points"] / r["cpu_seconds"] for r in kernel_runs)
    print(f"online EM alone (partial_fit, {kernel['points']} points in memory): "
          f"{kernel['points_per_second']:,.0f} points/s, {kernel_cpu:,.0f} per CPU-second; "
          f"the daemon reaches {daemon['points_per_second'] / kernel['points_per_second']:.0%} "
          f"of it (wall), {daemon_cpu / kernel_cpu:.0%} (CPU)")
    if sk:
        for threads, r in sk.items():
            print(f"scikit-learn {threads} thread(s): {r['seconds_per_iteration']:.3f} s "
                  f"({r['cpu_seconds_per_iteration']:.3f} CPU-s) per iteration on "
                  f"{args.sample} points = {r['point_iterations_per_second']:,.0f} "
                  f"point-iterations/s, {r['point_iterations_per_cpu_second']:,.0f} per CPU-second")
        best = max(r["point_iterations_per_second"] for r in sk.values())
        best_cpu = max(r["point_iterations_per_cpu_second"] for r in sk.values())
        print(f"ratio ours / sklearn-best, wall: daemon "
              f"{daemon['points_per_second'] / best:.2f}x, online EM alone "
              f"{kernel['points_per_second'] / best:.2f}x")
        print(f"ratio ours / sklearn-best, per CPU-second: daemon {daemon_cpu / best_cpu:.2f}x, "
              f"online EM alone {kernel_cpu / best_cpu:.2f}x")


if __name__ == "__main__":
    main()
