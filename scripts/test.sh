#!/usr/bin/env bash
# Runs every test of gmm-stream: installs what the tests need (scripts/setup.sh),
# starts a real Kafka-protocol broker on a free loopback port, checks formatting
# and lints, runs the whole test suite, builds and tests the Python package, and
# stops the broker.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
broker=$(scripts/kafka.sh start)
trap 'scripts/kafka.sh stop' EXIT
export GMM_STREAM_TEST_BROKERS="$broker"
echo "test.sh: broker at $broker" >&2

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The Python extension (python/) has no Rust tests; pytest tests it below, built
# once, in release.
cargo test --workspace --exclude gmm-stream-python --all-targets --locked
# The container image's build steps, config and health check (no Docker engine
# needed: see the script). It leaves the release binary the Python tests drive.
scripts/check-image.sh
scripts/python-test.sh
