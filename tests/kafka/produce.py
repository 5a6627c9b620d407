#!/usr/bin/env python3
"""Produces messages to Kafka with confluent-kafka, a client independent of the
daemon's (rust-rdkafka), for the end-to-end tests.

    produce.py --brokers HOST:PORT --topic T --messages FILE [--rate R]

FILE holds the messages, each framed as a little-endian u32 partition, a
little-endian i32 length (-1: a null value) and the value's bytes. They are
produced in file order to the given partitions by an idempotent producer (so no
retry duplicates or reorders them), `--rate` messages per second when given (the
tests kill the daemon while the stream is still arriving).

Prints one JSON line: {"offsets": [[partition, offset], ...]} in file order, from
the delivery reports, and exits 1 if any message was not delivered. The tests
derive the partitions' end offsets from it: tansu's ListOffsets answers for the
latest offset are wrong (see tests/kafka_e2e.rs).
"""

import argparse
import json
import struct
import sys
import time

from confluent_kafka import Producer


def read_messages(path):
    with open(path, "rb") as f:
        data = f.read()
    at, out = 0, []
    while at < len(data):
        partition, length = struct.unpack_from("<Ii", data, at)
        at += 8
        if length < 0:
            value = None
        else:
            value = data[at : at + length]
            at += length
        out.append((partition, value))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--messages", required=True)
    ap.add_argument("--rate", type=float, default=0.0)
    args = ap.parse_args()

    messages = read_messages(args.messages)
    producer = Producer(
        {
            "bootstrap.servers": args.brokers,
            "enable.idempotence": True,
            # One message per record batch: tansu 0.6 answers a fetch from an
            # offset inside a batch with the batches that start after it, losing
            # the rest of that batch (see tests/kafka_e2e.rs). Consumers resume
            # mid-batch after a pause, a restart or a rebalance.
            "linger.ms": 0,
            "batch.num.messages": 1,
            "message.max.bytes": 16 * 1024 * 1024,
        }
    )
    offsets = [None] * len(messages)
    failures = []

    def delivered(index):
        def report(err, msg):
            if err is not None:
                failures.append(f"message {index}: {err}")
            else:
                offsets[index] = [msg.partition(), msg.offset()]

        return report

    started = time.monotonic()
    for i, (partition, value) in enumerate(messages):
        if args.rate > 0:
            due = started + i / args.rate
            while True:
                now = time.monotonic()
                if now >= due:
                    break
                producer.poll(min(due - now, 0.05))
        while True:
            try:
                producer.produce(args.topic, value=value, partition=partition, on_delivery=delivered(i))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(60)
    if left or failures or any(o is None for o in offsets):
        print(f"produce.py: {left} messages undelivered; {failures[:5]}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"offsets": offsets}))


if __name__ == "__main__":
    main()
