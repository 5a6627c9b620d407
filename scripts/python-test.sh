#!/usr/bin/env bash
# Builds and installs the Python package the way the README says (`pip install
# ./python`: maturin, a release build of the extension on the workspace's target
# directory), then runs its pytest suite. The tests that drive the daemon and the
# CLI use GMM_STREAM_BIN (default: the release binary, built here if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "python-test.sh: $*" >&2; }

# maturin, numpy, scikit-learn and pytest come from scripts/setup.sh: no isolated
# build environment to download again, no dependency resolution.
pip=(python3 -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps --force-reinstall)
log "building and installing ./python"
"${pip[@]}" ./python || "${pip[@]}" --break-system-packages ./python

export GMM_STREAM_BIN=${GMM_STREAM_BIN:-$PWD/target/release/gmm-stream}
if [ ! -x "$GMM_STREAM_BIN" ]; then
    log "building $GMM_STREAM_BIN"
    cargo build --release --locked --bin gmm-stream
fi
# From the repository's root: run from python/, the source package (without its
# compiled module) would shadow the installed one.
python3 -m pytest -q python/tests
