#!/usr/bin/env python3
"""Peak memory of the daemon under concurrent /score requests of the largest size
allowed (http.max_body_bytes, http.max_score_points).

Starts `gmm-stream run` on its generator (dimension 8, so that the largest number of
points fills most of the largest body), waits for readiness, then posts N bodies at
once, several rounds, and reads the daemon's peak resident memory (VmHWM) from
/proc before and after. Usage:

    cargo build --release
    scripts/bench_http_memory.py [--binary target/release/gmm-stream] [--clients 8]
"""

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def body(points, dim, limit):
    rng = random.Random(7)
    rows = ",".join(
        "[" + ",".join(f"{rng.gauss(0, 3):.4f}" for _ in range(dim)) + "]"
        for _ in range(points)
    )
    data = f"[{rows}]".encode()
    assert len(data) <= limit, (len(data), limit)
    return data


def post(url, data, results, i):
    started = time.time()
    req = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            size = len(resp.read())
            results[i] = (resp.status, size, time.time() - started)
    except urllib.error.HTTPError as e:
        results[i] = (e.code, 0, time.time() - started)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="target/release/gmm-stream")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dim", type=int, default=8)
    args = ap.parse_args()

    max_body = 8 << 20
    max_points = 100_000
    port = free_port()
    work = tempfile.mkdtemp()
    daemon = subprocess.Popen(
        [
            args.binary, "run",
            "--set", f"http.listen=127.0.0.1:{port}",
            "--set", f"snapshot.dir={work}/snapshots",
            "--set", f"source.generator.dim={args.dim}",
            "--set", "source.generator.rate=2000",
            "--set", "log.status_every_seconds=0",
        ],
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        data = body(max_points, args.dim, max_body)
        idle_rss = vm(daemon.pid, "VmRSS")
        idle_hwm = vm(daemon.pid, "VmHWM")
        started = time.time()
        statuses = []
        for _ in range(args.rounds):
            results = [None] * args.clients
            threads = [
                threading.Thread(target=post, args=(base + "/score", data, results, i))
                for i in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses += results
        elapsed = time.time() - started
        report = {
            "clients": args.clients,
            "rounds": args.rounds,
            "body_bytes": len(data),
            "points_per_body": max_points,
            "dim": args.dim,
            "statuses": sorted({s for s, _, _ in statuses}),
            "answer_bytes": max(n for _, n, _ in statuses),
            "slowest_request_s": round(max(t for _, _, t in statuses), 2),
            "elapsed_s": round(elapsed, 2),
            "rss_idle_mib": round(idle_rss / 2**20, 1),
            "peak_rss_before_mib": round(idle_hwm / 2**20, 1),
            "peak_rss_after_mib": round(vm(daemon.pid, "VmHWM") / 2**20, 1),
            "rss_after_mib": round(vm(daemon.pid, "VmRSS") / 2**20, 1),
        }
        print(json.dumps(report, indent=2))
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
