#!/usr/bin/env bash
# A real Kafka-protocol broker (tansu, in-memory storage) on a free loopback port,
# for tests and demos.
#
#   scripts/kafka.sh install   build tansu once if it is not already installed
#   scripts/kafka.sh start     start it; prints host:port on stdout
#   scripts/kafka.sh stop      stop the broker this script started
#   scripts/kafka.sh status    print host:port if it runs
#
# The binary is looked for on PATH, then in $GMM_STREAM_CACHE/bin (default
# ~/.cache/gmm-stream/bin), and built there with cargo when missing (about 12
# minutes on 2 cores, once per machine).
set -euo pipefail

TANSU_VERSION=0.6.0
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${GMM_STREAM_CACHE:-$HOME/.cache/gmm-stream}
run_dir=${GMM_STREAM_KAFKA_DIR:-$top/target/kafka}

log() { echo "kafka.sh: $*" >&2; }

tansu_bin() {
    if command -v tansu >/dev/null 2>&1; then
        command -v tansu
    elif [ -x "$cache/bin/tansu" ]; then
        echo "$cache/bin/tansu"
    else
        return 1
    fi
}

install() {
    if bin=$(tansu_bin); then
        log "using $bin"
        return 0
    fi
    log "building tansu $TANSU_VERSION into $cache (once per machine, ~12 minutes)"
    mkdir -p "$cache"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
        --root "$cache" >&2
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() {
    local port=$1 pid=$2
    for _ in $(seq 1 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "the broker exited; its log:"
            cat "$run_dir/broker.log" >&2
            return 1
        fi
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    log "the broker did not accept connections on port $port within 10 s"
    return 1
}

start() {
    install
    local bin port pid
    bin=$(tansu_bin)
    if status >/dev/null 2>&1; then
        status
        return 0
    fi
    mkdir -p "$run_dir"
    port=$(free_port)
    # setsid: the broker outlives this script but not a `stop`.
    setsid "$bin" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ \
        >"$run_dir/broker.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$run_dir/broker.pid"
    echo "127.0.0.1:$port" >"$run_dir/broker.addr"
    wait_ready "$port" "$pid"
    echo "127.0.0.1:$port"
}

status() {
    [ -f "$run_dir/broker.pid" ] && kill -0 "$(cat "$run_dir/broker.pid")" 2>/dev/null \
        && cat "$run_dir/broker.addr"
}

stop() {
    if [ -f "$run_dir/broker.pid" ]; then
        kill "$(cat "$run_dir/broker.pid")" 2>/dev/null || true
        rm -f "$run_dir/broker.pid" "$run_dir/broker.addr"
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
