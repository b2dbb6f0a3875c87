#!/usr/bin/env bash
# Measures what the tuning profiles and the preempt timer change, for the table "What it changed
# when measured" in tuning/README.md: one shard pinned to CPU 0, the load-test harness pinned to
# CPU 1, each configuration through the scenarios its row names, REPEAT times. Writes one JSON
# report per run into OUT (default target/bench-tuning) and prints the table
# (scripts/bench-tuning-summary.py).
#
# Needs two CPUs and a quiet machine. Usage: scripts/bench-tuning.sh [profiles|preempt ...]
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/bench-tuning}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
REPEAT=${REPEAT:-2}
BROKER_CPU=${BROKER_CPU:-0}
HARNESS_CPU=${HARNESS_CPU:-1}
PORT=${PORT:-21883}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(profiles preempt)

source scripts/bench-common.sh

start_broker() { # start_broker CONFIG
  RUST_LOG=warn taskset -c "$BROKER_CPU" target/release/starling --config "$1" --shards 1 \
    --listen "127.0.0.1:$PORT" &
  await_broker "starling with $1"
}

common=(--payload 64 --duration "$DURATION" --warmup "$WARMUP")

profile_runs() { # profile_runs PROFILE REPEAT_INDEX
  local tag="$1-r$2" config="tuning/$1.toml"
  # A fresh broker for the idle connections, so RSS growth is theirs alone.
  start_broker "$config"
  run "$tag-conn" conn --connections 10000 --connect-rate 2000 --duration 5s
  stop_broker
  start_broker "$config"
  run "$tag-p2p-idle" p2p --pairs 10 --qos 1 --rate 100 "${common[@]}"
  run "$tag-fanout-100" fanout --subscribers 1000 --qos 0 --rate 100 "${common[@]}"
  run "$tag-p2p-20k" p2p --pairs 500 --qos 1 --rate 20000 "${common[@]}"
  run "$tag-p2p-max" p2p --pairs 500 --qos 1 --rate max --inflight 64 "${common[@]}" --drain 5s
  stop_broker
}

preempt_runs() { # preempt_runs MICROSECONDS REPEAT_INDEX
  printf '[tuning]\npreempt_timer_us = %d\n' "$1" >"$WORK/preempt-$1.toml"
  start_broker "$WORK/preempt-$1.toml"
  run "preempt-$1-r$2-p2p-max" p2p --pairs 500 --qos 1 --rate max --inflight 64 "${common[@]}" \
    --drain 5s
  stop_broker
}

for r in $(seq "$REPEAT"); do
  for part in "${parts[@]}"; do
    case "$part" in
      profiles) for p in default low-latency many-connections; do profile_runs "$p" "$r"; done ;;
      preempt) for t in 500 2000 10000 100000; do preempt_runs "$t" "$r"; done ;;
      *) echo "unknown part $part (profiles, preempt)" >&2; exit 2 ;;
    esac
  done
done
python3 scripts/bench-tuning-summary.py "$OUT"
