#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, and nothing when it is already
# there: the mosquitto broker and clients (interop and load-test harness tests), paho-mqtt,
# the Python client of tests/interop_paho.rs, and the servers of the exporter sinks' tests
# (tests/exporter_sinks.rs): redis-server, nats-server (JetStream) and tansu, a Kafka-protocol
# broker built with cargo install. Safe to re-run.
set -euo pipefail

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# Redis Streams and NATS JetStream (bookworm: redis 7.0, nats-server 2.9 with -js).
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)

# tansu: a Kafka-protocol broker in one binary with in-memory storage, from crates.io (no JVM,
# no Debian package of Kafka). Its default build has no storage engine at all ("memory://"
# needs the dynostore feature), so the check reads the features cargo recorded for the
# install, not just the version. Building it takes a while, so only when missing; it lands in
# cargo's bin directory (~/.cargo/bin), where the tests look.
TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore
tansu_ok() {
  python3 - "${CARGO_HOME:-$HOME/.cargo}/.crates2.json" "$TANSU_VERSION" "$TANSU_FEATURES" <<'PY' 2>/dev/null
import json, sys
path, version, feature = sys.argv[1:]
installs = json.load(open(path))["installs"]
sys.exit(0 if any(key.startswith(f"tansu {version} ") and feature in info["features"]
                  for key, info in installs.items()) else 1)
PY
}

# paho-mqtt 2.x (its CallbackAPIVersion is what tests/paho/agent.py uses), installed with pip.
PAHO_VERSION=2.1.0
paho_ok() { python3 -c 'from paho.mqtt.client import CallbackAPIVersion' >/dev/null 2>&1; }
need_paho=false
# python3 also reads cargo's record of the tansu install (below).
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if ! paho_ok; then
  need_paho=true
  python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-test-deps: installing ${need_apt[*]} with apt-get" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-test-deps: need root or sudo to install ${need_apt[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if $need_paho; then
  echo "install-test-deps: installing paho-mqtt $PAHO_VERSION with pip" >&2
  pip_install=(python3 -m pip install --quiet --disable-pip-version-check "paho-mqtt==$PAHO_VERSION")
  if ! pip_output=$("${pip_install[@]}" 2>&1); then
    # A Debian python3 is "externally managed" (PEP 668): pip refuses unless told otherwise.
    if grep -q externally-managed-environment <<<"$pip_output"; then
      "${pip_install[@]}" --break-system-packages
    else
      echo "$pip_output" >&2
      exit 1
    fi
  fi
  paho_ok || { echo "install-test-deps: paho-mqtt still cannot be imported by python3" >&2; exit 1; }
fi

if ! tansu_ok; then
  echo "install-test-deps: building tansu $TANSU_VERSION ($TANSU_FEATURES) with cargo install (about 15-25 minutes on 2 cores)" >&2
  # --locked: the versions tansu was released with, not whatever is newest today. --force:
  # replaces a build of the same version without the feature. Its own target directory, so a
  # CARGO_TARGET_DIR set for the project is not filled with it.
  tansu_target=$(mktemp -d)
  CARGO_TARGET_DIR="$tansu_target" cargo install --quiet --locked --force \
    --version "$TANSU_VERSION" --features "$TANSU_FEATURES" tansu
  rm -rf "$tansu_target"
  tansu_ok || { echo "install-test-deps: tansu $TANSU_VERSION ($TANSU_FEATURES) is still not installed" >&2; exit 1; }
fi

# The Debian packages start a system-wide mosquitto (port 1883), redis (6379) and nats (4222)
# where an init system runs; tests start their own on free ports and never use those, so they
# are left alone.
echo "install-test-deps: ok (mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | head -n1 | awk '{print $3}'), paho-mqtt $(python3 -c 'import paho.mqtt; print(paho.mqtt.__version__)'), redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//'), nats-server $(/usr/sbin/nats-server --version 2>/dev/null | awk '{print $2}'), tansu $TANSU_VERSION)" >&2
