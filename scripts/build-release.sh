#!/usr/bin/env bash
# Builds the release binary and stages the runtime file layout in OUT_DIR:
#   usr/local/bin/gmm-stream
#   etc/gmm-stream/config.toml   (config/kafka.toml)
#   etc/gmm-stream/default.toml  (every key, for reference)
#   var/lib/gmm-stream/          (snapshots; a volume in the image)
# The Dockerfile's builder stage runs exactly this script and copies OUT_DIR into
# the runtime image. scripts/check-image.sh runs it too (from scripts/test.sh, in
# CI) and exercises the staged result, so the image's build steps cannot rot
# although no Docker engine runs here.
set -euo pipefail
out=${1:?usage: scripts/build-release.sh OUT_DIR}
cd "$(dirname "$0")/.."

cargo build --release --locked --bin gmm-stream
mkdir -p "$out/usr/local/bin" "$out/etc/gmm-stream" "$out/var/lib/gmm-stream"
install -m 0755 target/release/gmm-stream "$out/usr/local/bin/gmm-stream"
install -m 0644 config/kafka.toml "$out/etc/gmm-stream/config.toml"
install -m 0644 config/default.toml "$out/etc/gmm-stream/default.toml"
