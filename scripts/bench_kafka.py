#!/usr/bin/env python3
"""How fast `gmm-stream run` consumes points from Kafka, next to how fast the
broker serves the same messages to a plain consumer.

    scripts/bench_kafka.py [--brokers HOST:PORT] [--points 2000000] [--dim 16]
                           [--components 16] [--per-message 1000] [--partitions 2]
                           [--batch-size 4096] [--members N] [--no-build] [--keep]

1. Draws N points from a K-component, d-dimensional mixture (numpy, seeded) and
   produces them as f64le messages of `--per-message` points, round-robin over
   the partitions of a fresh topic (confluent-kafka, one message per record
   batch: tansu 0.6 skips the rest of a batch fetched from its middle, which a
   consumer does after a pause).
2. The broker's own rate: a confluent-kafka consumer reads every message back
   (no decoding), timed from its first message to its last.
3. The daemon (release build, scores off, batch_size 4096, a JSON snapshot every
   0.25 s kept on disk) consumes the topic. Its rate is measured between its
   first and its last snapshot: both carry points_seen and updated_at, taken
   right after a mini-batch, so the interval counts exactly the points absorbed
   in it. The time from the daemon's start to its last point (connect, group
   join, warm-up) is reported too.

With `--members N` the daemons are N members of one group sharing a model
through a state topic (README, "Scaling out"): the rate is the group's (every
member's points_seen counts the group's points, measured on the first member's
snapshots); the state topic's bytes per input point are counted by reading it
back; then one more member starts and the time it takes to read the state topic
up to now (its log's catch-up line) is reported.

Without --brokers a tansu broker is started with scripts/kafka.sh (in a
directory of its own) and stopped at the end. Numbers depend on the machine and
on what else runs on it; they are measured here, never asserted by the tests.
"""

import argparse
import datetime
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOP = pathlib.Path(__file__).resolve().parent.parent


def log(msg):
    print(f"bench_kafka: {msg}", file=sys.stderr, flush=True)


def mixture_points(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.uniform(-10, 10, size=(k, d))
    factors = [rng.normal(size=(d, d)) / np.sqrt(d) for _ in range(k)]
    chol = [np.linalg.cholesky(a @ a.T + 0.5 * np.eye(d)) for a in factors]
    weights = rng.dirichlet(np.full(k, 5.0))
    z = rng.choice(k, size=n, p=weights)
    x = rng.normal(size=(n, d))
    out = np.empty((n, d))
    for j in range(k):
        idx = z == j
        out[idx] = means[j] + x[idx] @ chol[j].T
    return out


def start_broker(run_dir):
    env = dict(os.environ, GMM_STREAM_KAFKA_DIR=str(run_dir))
    out = subprocess.run(
        [str(TOP / "scripts/kafka.sh"), "start"], env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def stop_broker(run_dir):
    env = dict(os.environ, GMM_STREAM_KAFKA_DIR=str(run_dir))
    subprocess.run([str(TOP / "scripts/kafka.sh"), "stop"], env=env, check=False)


def produce(brokers, topic, points, per_message, partitions):
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "linger.ms": 0,
            "batch.num.messages": 1,
            "message.max.bytes": 16 * 1024 * 1024,
            "queue.buffering.max.kbytes": 1024 * 1024,
        }
    )
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    started = time.monotonic()
    n_msgs = 0
    for i, at in enumerate(range(0, len(points), per_message)):
        value = points[at : at + per_message].astype("<f8").tobytes()
        while True:
            try:
                producer.produce(topic, value=value, partition=i % partitions, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        n_msgs += 1
    left = producer.flush(120)
    took = time.monotonic() - started
    if left or failures:
        sys.exit(f"bench_kafka: {left} messages undelivered, failures: {failures[:3]}")
    return n_msgs, took


def broker_rate(brokers, topic, partitions, n_msgs):
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"bench-reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, nbytes, first, last = 0, 0, None, None
    deadline = time.monotonic() + 300
    while got < n_msgs and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=500, timeout=1.0):
            if m.error():
                continue
            now = time.monotonic()
            first = first or now
            last = now
            got += 1
            nbytes += len(m.value() or b"")
    consumer.close()
    if got < n_msgs:
        sys.exit(f"bench_kafka: the plain consumer read only {got} of {n_msgs} messages")
    return got, nbytes, (last - first) if got > 1 else float("nan")


def daemon_config(brokers, topic, group, snap_dir, dim, k, batch_size, state=None, member=None):
    group_keys = f'state_topic = "{state}"\ngroup_instance_id = "{member}"\n' if state else ""
    return f"""[source]
kind = "kafka"
format = "f64le"
dim = {dim}

[model]
components = {k}

[estimator]
batch_size = {batch_size}
batch_timeout_ms = 200

[snapshot]
dir = "{snap_dir}"
every_points = 0
every_seconds = 0.25
keep = 100000
format = "json"

[scores]
sink = "none"

[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
{group_keys}
[http]
listen = ""

[log]
status_every_seconds = 5.0
"""


def read_snapshots(snap_dir):
    out = []
    for path in sorted(pathlib.Path(snap_dir).glob("snapshot-*.json")):
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced
        at = datetime.datetime.fromisoformat(m["updated_at"].replace("Z", "+00:00")).timestamp()
        out.append((m["points_seen"], at))
    return sorted(out)


def peak_rss_mb(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_daemons(binary, brokers, topic, n_points, args, workdir, state=None):
    """Runs `args.members` daemons (one without a state topic) until every one's
    newest snapshot counts every point; the rates of the first one."""
    group = f"bench-{time.time_ns()}"
    n = args.members if state else 1
    procs, dirs = [], []
    started_wall = time.time()
    started = time.monotonic()
    max_rss_mb = float("nan")
    for i in range(n):
        snap_dir = workdir / f"snapshots{i}"
        config = workdir / f"daemon{i}.toml"
        config.write_text(
            daemon_config(
                brokers, topic, group, snap_dir, args.dim, args.components, args.batch_size, state, f"member{i}"
            )
        )
        log_file = open(workdir / f"daemon{i}.log", "w")
        procs.append(subprocess.Popen([str(binary), "run", "--config", str(config)], stderr=log_file))
        dirs.append(snap_dir)
    try:
        while True:
            for i, proc in enumerate(procs):
                if proc.poll() is not None:
                    sys.exit(f"bench_kafka: daemon {i} exited ({proc.returncode}); see {workdir}/daemon{i}.log")
            newest = [read_snapshots(d)[-1:] if d.is_dir() else [] for d in dirs]
            if all(s and s[-1][0] >= n_points for s in newest):
                max_rss_mb = peak_rss_mb(procs[0].pid)
                break
            if time.monotonic() - started > 1800:
                sys.exit(f"bench_kafka: the daemons did not absorb every point in 30 min; see {workdir}")
            time.sleep(0.1)
        catch_up = catch_up_seconds(binary, brokers, topic, group, args, workdir, state, n) if state else None
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    snaps = read_snapshots(dirs[0])
    done = [s for s in snaps if s[0] >= n_points][0]
    # Snapshots taken right after a batch; the final one may come up to 0.25 s
    # after the last batch (when the stream went quiet), so it is left out of
    # the rate unless there is nothing else.
    exact = [s for s in snaps if s[0] < n_points]
    first, last = (exact[0], exact[-1]) if len(exact) >= 2 else (snaps[0], done)
    rate = (last[0] - first[0]) / (last[1] - first[1]) if last[1] > first[1] else float("nan")
    return {
        "members": n,
        "first_snapshot_points": first[0],
        "snapshots": len(snaps),
        "steady_points": last[0] - first[0],
        "steady_seconds": last[1] - first[1],
        "steady_points_per_s": rate,
        "start_to_last_point_s": done[1] - started_wall,
        "end_to_end_points_per_s": n_points / (done[1] - started_wall),
        "peak_rss_mb": max_rss_mb,
        "new_member_catch_up_s": catch_up,
    }


def catch_up_seconds(binary, brokers, topic, group, args, workdir, state, i):
    """Starts one more member and returns how long it took to read the state topic."""
    config = workdir / f"daemon{i}.toml"
    config.write_text(
        daemon_config(brokers, topic, group, workdir / f"snapshots{i}", args.dim, args.components,
                      args.batch_size, state, f"member{i}")
    )
    log_path = workdir / f"daemon{i}.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([str(binary), "run", "--config", str(config)], stderr=log_file)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for line in log_path.read_text().splitlines():
                if "read the state topic up to now" in line:
                    took = line.split("took=")[1].split()[0]
                    value = float("".join(c for c in took if c.isdigit() or c == "."))
                    return value / 1000 if took.endswith("ms") else value
            time.sleep(0.1)
        return None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def state_topic_bytes(brokers, state):
    """Keys and values on the state topic, read back from its beginning."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-state-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(state, 0, 0)])
    total, records, idle = 0, 0, 0
    while idle < 20:
        m = c.poll(0.2)
        if m is None or m.error():
            idle += 1
            continue
        idle = 0
        total += len(m.key() or b"") + len(m.value() or b"")
        records += 1
    c.close()
    return total, records


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers")
    ap.add_argument("--points", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--components", type=int, default=16)
    ap.add_argument("--per-message", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--members", type=int, default=0, help="members of a group sharing a state topic (0: one daemon without)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (snapshots, logs)")
    args = ap.parse_args()

    binary = TOP / "target/release/gmm-stream"
    if not args.no_build:
        log("building the release binary")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=TOP, check=True)

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    run_dir = workdir / "broker"
    brokers = args.brokers
    if not brokers:
        brokers = start_broker(run_dir)
        log(f"started tansu at {brokers}")
    try:
        topic = f"bench-points-{time.time_ns()}"
        admin = AdminClient({"bootstrap.servers": brokers})
        for f in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
            f.result()
        log(f"drawing {args.points} points (d = {args.dim}, K = {args.components})")
        points = mixture_points(args.points, args.dim, args.components)
        n_msgs, produce_s = produce(brokers, topic, points, args.per_message, args.partitions)
        mb = points.nbytes / 1e6
        log(f"produced {n_msgs} messages ({mb:.0f} MB) in {produce_s:.1f} s")

        got, nbytes, read_s = broker_rate(brokers, topic, args.partitions, n_msgs)
        broker_points = args.points * (got - 1) / got / read_s
        log(f"plain consumer: {got} messages in {read_s:.2f} s")

        state = None
        if args.members > 0:
            state = f"bench-state-{time.time_ns()}"
            new = NewTopic(state, 1, 1, config={"cleanup.policy": "compact"})
            for f in admin.create_topics([new]).values():
                f.result()
        log(f"running {args.members or 1} daemon(s)")
        d = run_daemons(binary, brokers, topic, args.points, args, workdir, state)
        if state:
            nbytes_state, records = state_topic_bytes(brokers, state)
            d["state_bytes"] = nbytes_state
            d["state_records"] = records
            d["state_bytes_per_point"] = nbytes_state / args.points
        result = {
            "points": args.points,
            "dim": args.dim,
            "components": args.components,
            "points_per_message": args.per_message,
            "partitions": args.partitions,
            "batch_size": args.batch_size,
            "produce_points_per_s": args.points / produce_s,
            "broker_consume_points_per_s": broker_points,
            "broker_consume_mb_per_s": nbytes * (got - 1) / got / read_s / 1e6,
            "daemon": d,
        }
        print(json.dumps(result, indent=2))
        log(
            f"daemon {d['steady_points_per_s']:,.0f} points/s between its first and last snapshot "
            f"({d['start_to_last_point_s']:.1f} s from start to the last point); "
            f"the broker serves {broker_points:,.0f} points/s to a plain consumer"
        )
    finally:
        if not args.brokers:
            stop_broker(run_dir)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
