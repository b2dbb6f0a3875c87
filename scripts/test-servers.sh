#!/usr/bin/env bash
# Starts the exporter sinks' servers by hand, the way tests/common/servers.rs starts them for
# the tests: Redis (no persistence), NATS with JetStream, and tansu (a Kafka-protocol broker
# storing in memory), on loopback ports, with their data in a temporary directory. Prints
# their addresses and runs until interrupted (Ctrl-C), then stops them and removes the data.
#
#   scripts/test-servers.sh [REDIS_PORT] [NATS_PORT] [KAFKA_PORT]    (6390 4230 9093)
#
# Run scripts/install-test-deps.sh first.
set -euo pipefail

redis_port=${1:-6390}
nats_port=${2:-4230}
kafka_port=${3:-9093}
tansu=$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
dir=$(mktemp -d)
pids=()

stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  >"$dir/redis.log" 2>&1 &
pids+=($!)
mkdir -p "$dir/nats"
"$nats" -js -a 127.0.0.1 -p "$nats_port" -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
pids+=($!)
(cd "$dir" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/) \
  >"$dir/tansu.log" 2>&1 &
pids+=($!)

echo "redis: redis://127.0.0.1:$redis_port"
echo "nats:  nats://127.0.0.1:$nats_port (JetStream)"
echo "kafka: 127.0.0.1:$kafka_port (tansu, in memory)"
echo "logs:  $dir/*.log; Ctrl-C stops them"
wait
