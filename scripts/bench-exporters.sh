#!/usr/bin/env bash
# The cost of exporting every event: 500 publisher/subscriber pairs at QoS 1, as fast as the
# broker goes, with no exporter and with every event kind exported to Redis Streams (a real
# redis-server on loopback). The issue's bar: a run with the exporter delivers at least 90% of
# the messages per second of the run without. Reports and broker logs go to OUT (default
# target/bench-exporters).
#
#   scripts/bench-exporters.sh            # REPEAT=2 DURATION=10s by default
#
# One shard is pinned to CPU 0 and the harness to CPU 1. On a 2-CPU machine there is no CPU
# left for the exporter and Redis, so the modes differ in whose CPU they take:
#   none         no exporter: the baseline.
#   redis        the defaults: the exporter thread runs on the CPUs no shard is pinned to (the
#                harness's CPU here) at nice 10, drops the newest events when its queue is
#                full; redis-server shares the harness's CPU.
#   redis-spare  exporters on the shard's spare time only: exporter_cpus = [0] at nice 19,
#                overflow = "drop_newest" (so overload is shed at the shard, counted);
#                redis-server on CPU 0 at nice 19, standing in for a Redis on another machine.
#   redis-down   the defaults with no Redis listening: a dead sink (retries, queue overflow).
#   redis-oldest the defaults but overflow = "drop_oldest" (not run unless MODES names it).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/bench-exporters}
PORT=${PORT:-18830}
REDIS_PORT=${REDIS_PORT:-16390}
HARNESS_CPU=${HARNESS_CPU:-1}
REPEAT=${REPEAT:-2}
DURATION=${DURATION:-10s}
MODES=${MODES:-none redis redis-spare redis-down}
source scripts/bench-common.sh

REDIS_PID=
trap 'kill "${PID:-}" ${REDIS_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT

start_redis() { # start_redis CPUS NICE
  nice -n "$2" taskset -c "$1" redis-server --port "$REDIS_PORT" --save "" --appendonly no \
    --daemonize no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-server did not start" >&2
  exit 1
}

stop_redis() {
  kill "$REDIS_PID" 2>/dev/null || true
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=
}

base="[[listeners]]
bind = \"127.0.0.1:$PORT\"
[tuning]
shards = 1
cpus = [0]"
echo "$base" >"$WORK/none.toml"
exporter="[[exporters]]
name = \"redis\"
type = \"redis\"
url = \"redis://127.0.0.1:$REDIS_PORT\"
maxlen = 100000
batch_events = 1024
queue_capacity = 1000000"
printf '%s\n%s\n' "$base" "$exporter" >"$WORK/redis.toml"
# The same, aimed at a port nothing listens on (REDIS_PORT + 1).
printf '%s\n%s\n' "$base" "${exporter/$REDIS_PORT/$((REDIS_PORT + 1))}" >"$WORK/redis-down.toml"
printf '%s\n%s\noverflow = "drop_oldest"\n' "$base" "$exporter" >"$WORK/redis-oldest.toml"
printf '%s\n[events]\nexporter_cpus = [0]\nexporter_nice = 19\n%s\noverflow = "drop_newest"\n' \
  "$base" "$exporter" >"$WORK/redis-spare.toml"

for round in $(seq "$REPEAT"); do
  for mode in $MODES; do
    case "$mode" in
      redis | redis-oldest) start_redis "$HARNESS_CPU" 0 ;;
      redis-spare) start_redis 0 19 ;;
    esac
    target/release/starling --config "$WORK/$mode.toml" 2>"$OUT/$mode-$round.log" &
    await_broker "starling ($mode)"
    run "p2p-max-$mode-$round" p2p --pairs 500 --qos 1 --rate max --inflight 64 \
      --duration "$DURATION" --drain 5s
    stop_broker
    [ -n "$REDIS_PID" ] && stop_redis
  done
done
python3 - "$OUT" "$MODES" <<'PY'
import glob, json, os, re, sys
out, modes = sys.argv[1], sys.argv[2].split()
best = {}
for mode in modes:
    for path in sorted(glob.glob(os.path.join(out, "p2p-max-*.json"))):
        name = re.fullmatch(rf"p2p-max-{re.escape(mode)}-(\d+)\.json", os.path.basename(path))
        if not name:
            continue
        round_ = name[1]
        total = json.load(open(path))["total"]
        line = f"{mode:12} round {round_}: {total['delivered_per_s']:>9,.0f} delivered/s, {total['lost']} lost"
        log = open(os.path.join(out, f"{mode}-{round_}.log")).read()
        sent = re.search(r"sent: (\d+)", log)
        retried = re.search(r"retried: (\d+)", log)
        queue_full = re.search(r"dropped_queue_full: (\d+)", log)
        shed = re.search(r"dropped_ring_full=(\d+)", log)
        recorded = re.search(r"recorded=(\d+)", log)
        if sent:
            line += (f"; events recorded {int(recorded[1]) if recorded else 0:,}, "
                     f"sent to Redis {int(sent[1]):,}, dropped: queue full "
                     f"{int(queue_full[1]):,}, shed at the shard {int(shed[1]) if shed else 0:,}, "
                     f"batches retried {int(retried[1]):,}")
        print(line)
        best[mode] = max(best.get(mode, 0), total["delivered_per_s"])
if best.get("none"):
    for mode, rate in best.items():
        if mode != "none":
            print(f"best {mode}: {rate:,.0f}/s = {100 * rate / best['none']:.1f}% of the best without an exporter ({best['none']:,.0f}/s)")
PY
