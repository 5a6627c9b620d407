#!/usr/bin/env bash
# Installs what building and testing gmm-stream needs, skipping what is present:
# a C toolchain and OpenSSL headers (librdkafka is built from source by rdkafka-sys),
# Python with numpy, scikit-learn and confluent-kafka (reference values, an
# independent Kafka client), maturin and pytest (the Python package and its
# tests), and the tansu broker.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "setup.sh: $*" >&2; }

missing=()
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || missing+=("$1"); }
for pkg in build-essential pkg-config libssl-dev zlib1g-dev; do
    need_pkg "$pkg"
done
# Python may come from elsewhere (pyenv): only ask apt when it is absent.
command -v python3 >/dev/null 2>&1 || need_pkg python3
python3 -m pip --version >/dev/null 2>&1 || need_pkg python3-pip
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

# Python module -> the PyPI package that provides it.
declare -A py_packages=(
    [numpy]=numpy [sklearn]=scikit-learn [confluent_kafka]=confluent-kafka
    [maturin]="maturin>=1.9.4,<2" [pytest]=pytest
)
wanted=()
for module in "${!py_packages[@]}"; do
    python3 -c "import $module" 2>/dev/null || wanted+=("${py_packages[$module]}")
done
if [ ${#wanted[@]} -gt 0 ]; then
    log "installing ${wanted[*]}"
    pip=(python3 -m pip install --quiet --disable-pip-version-check)
    # A distribution's own Python may refuse (PEP 668, "externally managed"): the
    # packages then go in with --break-system-packages, as a CI machine allows.
    "${pip[@]}" "${wanted[@]}" || "${pip[@]}" --break-system-packages "${wanted[@]}"
fi

scripts/kafka.sh install
