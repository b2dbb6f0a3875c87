#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, and nothing when it is already
# there: the mosquitto broker and clients (interop and load-test harness tests) and paho-mqtt,
# the Python client of tests/interop_paho.rs. Safe to re-run.
set -euo pipefail

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)

# paho-mqtt 2.x (its CallbackAPIVersion is what tests/paho/agent.py uses), installed with pip.
PAHO_VERSION=2.1.0
paho_ok() { python3 -c 'from paho.mqtt.client import CallbackAPIVersion' >/dev/null 2>&1; }
need_paho=false
if ! paho_ok; then
  need_paho=true
  command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
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

# The Debian package starts a system-wide mosquitto on port 1883 where an init system runs;
# tests start their own on free ports and never use it, so it is left alone.
echo "install-test-deps: ok (mosquitto $(/usr/sbin/mosquitto -h 2>/dev/null | head -n1 | awk '{print $3}'), paho-mqtt $(python3 -c 'import paho.mqtt; print(paho.mqtt.__version__)'))" >&2
