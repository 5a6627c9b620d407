#!/usr/bin/env bash
# Checks what the container image would run, without a Docker engine: builds the
# staged layout with scripts/build-release.sh (as the Dockerfile does), checks the
# Dockerfile still uses it, then runs the staged binary with the image's own
# config against a real broker (GMM_STREAM_TEST_BROKERS, or one started here):
# the topics it needs, the health check the image declares, readiness once points
# flow, and a clean exit with a snapshot on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "check-image.sh: $*" >&2; }

grep -q '^RUN scripts/build-release.sh /out$' Dockerfile
grep -q '^COPY --from=builder /out/ /$' Dockerfile
grep -q '"healthcheck"' Dockerfile
grep -q '"/etc/gmm-stream/config.toml"' Dockerfile

work=$(mktemp -d)
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill -9 "$daemon" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

scripts/build-release.sh "$work/root" >&2
bin="$work/root/usr/local/bin/gmm-stream"
etc="$work/root/etc/gmm-stream"
"$bin" --version >&2

broker=${GMM_STREAM_TEST_BROKERS:-$(scripts/kafka.sh start)}
python3 - "$broker" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
wanted = ["points", "gmm-models", "gmm-scores", "gmm-dead-letters"]
existing = admin.list_topics(timeout=10).topics
new = [NewTopic(t, 1, 1) for t in wanted if t not in existing]
for _, f in admin.create_topics(new).items() if new else []:
    f.result(10)
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GMM_STREAM__KAFKA__BROKERS="$broker" \
GMM_STREAM__SNAPSHOT__DIR="$work/snapshots" \
GMM_STREAM__HTTP__LISTEN="127.0.0.1:$port" \
GMM_STREAM__KAFKA__GROUP_ID="check-image-$$" \
    "$bin" run --config "$etc/config.toml" --set estimator.warmup_points=500 \
    2>"$work/daemon.log" &
daemon=$!

for _ in $(seq 100); do
    "$bin" healthcheck --address "127.0.0.1:$port" 2>/dev/null && break
    sleep 0.1
done
"$bin" healthcheck --address "127.0.0.1:$port" || { cat "$work/daemon.log" >&2; exit 1; }

python3 - "$broker" <<'PY'
import json, random, sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1]})
rng = random.Random(1)
for _ in range(30):
    block = [[rng.gauss(c, 1.0), rng.gauss(-c, 1.0)] for c in (0, 6) for _ in range(50)]
    p.produce("points", json.dumps(block).encode())
p.flush(10)
PY

ready=""
for _ in $(seq 300); do
    if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port/readyz', timeout=2).status == 200 else 1)" 2>/dev/null; then
        ready=yes; break
    fi
    sleep 0.1
done
[ -n "$ready" ] || { log "the daemon never became ready"; cat "$work/daemon.log" >&2; exit 1; }

kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
daemon=""
[ "$status" -eq 0 ] || { log "exit status $status after SIGTERM"; cat "$work/daemon.log" >&2; exit 1; }
ls "$work/snapshots"/snapshot-* >/dev/null || { log "no snapshot after SIGTERM"; exit 1; }
log "ok: the image's build, config, health check and shutdown work"
