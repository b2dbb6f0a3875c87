# Shared by scripts/bench-brokers.sh and scripts/bench-tuning.sh (sourced, not run): the release
# build, the work directory, and starting, stopping and measuring one broker at a time.
# Expects OUT, PORT, HARNESS_CPU; sets LT, WORK and PID.

cargo build --release --locked -p starling -p starling-loadtest
LT=target/release/starling-loadtest
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'kill "${PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Call right after starting a broker in the background: records its pid and waits until it
# accepts connections on PORT.
await_broker() { # await_broker NAME
  PID=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not start" >&2
  exit 1
}

stop_broker() {
  kill -INT "$PID" 2>/dev/null || true
  # rumqttd 0.20 ignores SIGINT and SIGTERM: give every broker 5 s, then SIGKILL.
  for _ in $(seq 50); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=
  sleep 1
}

# Runs one harness scenario against the running broker; the report goes to OUT/NAME.json and
# its text to OUT/NAME.txt.
run() { # run NAME SCENARIO ARGS...
  local name=$1
  shift
  echo "== $name: $*"
  taskset -c "$HARNESS_CPU" "$LT" "$@" --port "$PORT" --broker-pid "$PID" \
    --json "$OUT/$name.json" >"$OUT/$name.txt" 2>&1 \
    || echo "   (exit $? — see $OUT/$name.txt)"
}
