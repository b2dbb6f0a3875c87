#!/usr/bin/env bash
# Runs the broker comparison of docs/performance.md: Starling (one shard), mosquitto and
# rumqttd, each pinned to CPU 0 with the load-test harness pinned to CPU 1, through the same
# scenarios, one after the other. Writes one JSON report per run into OUT (default
# target/bench-brokers) and prints a summary table (scripts/bench-summary.py).
#
# Needs: mosquitto (apt-get install mosquitto), rumqttd (cargo install rumqttd --root
# /opt/rumqttd, or RUMQTTD=/path/to/rumqttd), two CPUs, and a quiet machine: the figures are
# only as good as the absence of other work during the runs.
#
# Usage: scripts/bench-brokers.sh [starling|mosquitto|rumqttd ...]
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-target/bench-brokers}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
BROKER_CPU=${BROKER_CPU:-0}
HARNESS_CPU=${HARNESS_CPU:-1}
RUMQTTD=${RUMQTTD:-$(command -v rumqttd || echo /opt/rumqttd/bin/rumqttd)}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
PORT=${PORT:-21883}
brokers=("$@")
[ ${#brokers[@]} -gt 0 ] || brokers=(starling mosquitto rumqttd)

source scripts/bench-common.sh

start_broker() {
  case "$1" in
    starling)
      # log.level warn: mosquitto runs with log_dest none, rumqttd without RUST_LOG.
      printf '[[listeners]]\nbind = "127.0.0.1:%s"\n[log]\nlevel = "warn"\n[mqtt]\nmax_queued_messages = 100000\nmax_queued_bytes = 104857600\n' \
        "$PORT" > "$WORK/starling.toml"
      taskset -c "$BROKER_CPU" target/release/starling --config "$WORK/starling.toml" --shards 1 &
      ;;
    mosquitto)
      printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nmax_queued_messages 100000\nlog_dest none\n' \
        "$PORT" > "$WORK/mosquitto.conf"
      taskset -c "$BROKER_CPU" "$MOSQUITTO" -c "$WORK/mosquitto.conf" &
      ;;
    rumqttd)
      cat > "$WORK/rumqttd.toml" <<CONF
id = 0
[router]
id = 0
max_connections = 20010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:$PORT"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 100
    dynamic_filters = true
CONF
      taskset -c "$BROKER_CPU" "$RUMQTTD" -c "$WORK/rumqttd.toml" -q >/dev/null 2>&1 &
      ;;
  esac
  await_broker "$1"
}

for broker in "${brokers[@]}"; do
  # Each broker starts fresh for the idle-connection run, so RSS growth is the connections'.
  start_broker "$broker"
  run "$broker-conn-idle" conn --connections 10000 --connect-rate 2000 --duration 5s
  stop_broker
  start_broker "$broker"
  common=(--payload 64 --duration "$DURATION" --warmup "$WARMUP")
  run "$broker-fanout-20k" fanout --subscribers 1000 --qos 0 --rate 20 "${common[@]}"
  run "$broker-fanout-max" fanout --subscribers 1000 --qos 0 --rate 1000 "${common[@]}" --drain 10s
  run "$broker-p2p-20k" p2p --pairs 500 --qos 1 --rate 20000 "${common[@]}"
  run "$broker-p2p-max" p2p --pairs 500 --qos 1 --rate max --inflight 64 "${common[@]}" --drain 5s
  run "$broker-fanin-20k" fanin --publishers 100 --qos 0 --rate 20000 "${common[@]}"
  run "$broker-fanin-max" fanin --publishers 100 --qos 0 --rate max "${common[@]}" --drain 10s
  stop_broker
done
python3 scripts/bench-summary.py "$OUT"
