#!/usr/bin/env bash
# The cost of exporting every event: 500 publisher/subscriber pairs at QoS 1, as fast as the
# broker goes, once with no exporter and once with every event kind exported to Redis Streams
# (a real redis-server on loopback). The issue's bar: the second run delivers at least 90% of
# the first's messages per second. Reports go to OUT (default target/bench-exporters).
#
#   scripts/bench-exporters.sh            # REPEAT=2 DURATION=10s by default
#
# The broker's one shard is pinned to CPU 0 and the harness to CPU 1; the exporter thread and
# redis-server are not pinned: on a 2-CPU machine they take their CPU from the other two, which
# is the cost an operator pays.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/bench-exporters}
PORT=${PORT:-18830}
REDIS_PORT=${REDIS_PORT:-16390}
HARNESS_CPU=${HARNESS_CPU:-1}
REPEAT=${REPEAT:-2}
DURATION=${DURATION:-10s}
source scripts/bench-common.sh

redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize no \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
trap 'kill "${PID:-}" "$REDIS_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

base="[[listeners]]
bind = \"127.0.0.1:$PORT\"
[tuning]
shards = 1
cpus = [0]"
echo "$base" >"$WORK/none.toml"
cat >"$WORK/redis.toml" <<TOML
$base
[[exporters]]
name = "redis"
type = "redis"
url = "redis://127.0.0.1:$REDIS_PORT"
maxlen = 100000
batch_events = 1024
queue_capacity = 1000000
TOML

for round in $(seq "$REPEAT"); do
  for mode in none redis; do
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    target/release/starling --config "$WORK/$mode.toml" 2>"$WORK/$mode-$round.log" &
    await_broker "starling ($mode)"
    run "p2p-max-$mode-$round" p2p --pairs 500 --qos 1 --rate max --inflight 64 \
      --duration "$DURATION" --drain 5s
    stop_broker
    if [ "$mode" = redis ]; then
      entries=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'supermq.mqtt*' \
        | xargs -r -n1 redis-cli -p "$REDIS_PORT" xlen | paste -sd+ | bc)
      echo "   redis streams hold $entries entries (each trimmed to ~100000)"
      grep -o '"exporter counters".*' "$WORK/$mode-$round.log" || \
        grep 'exporter counters' "$WORK/$mode-$round.log" || true
    fi
  done
done
python3 - "$OUT" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
rates = {"none": [], "redis": []}
for path in sorted(glob.glob(os.path.join(out, "p2p-max-*.json"))):
    mode = path.rsplit("-", 2)[-2]
    report = json.load(open(path))
    rate = report["total"]["delivered_per_s"]
    lost = report["total"]["lost"]
    rates[mode].append(rate)
    print(f"{os.path.basename(path)}: {rate:,.0f} delivered/s, {lost} lost")
if rates["none"] and rates["redis"] and all(rates["none"]) and all(rates["redis"]):
    none, redis = max(rates["none"]), max(rates["redis"])
    print(f"best without exporter {none:,.0f}/s, with every event to Redis {redis:,.0f}/s: {100*redis/none:.1f}%")
PY
