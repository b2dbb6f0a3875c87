#!/usr/bin/env python3
"""Summarises the JSON reports of scripts/bench-brokers.sh as the Markdown table of
docs/performance.md: one row per scenario, one column group per broker."""

import json
import pathlib
import sys

SCENARIOS = [
    ("fanout-max", "fanout 1000 subs, QoS 0, max: delivered/s"),
    ("p2p-max", "500 pairs, QoS 1, max: delivered/s"),
    ("fanin-max", "100 pubs → 1 wildcard sub, QoS 0, max: delivered/s"),
    ("fanout-20k", "fanout at 20k/s: p99 / broker µs per msg"),
    ("p2p-20k", "p2p QoS 1 at 20k/s: p99 / broker µs per msg"),
    ("fanin-20k", "fanin at 20k/s: p99 / broker µs per msg"),
    ("conn-idle", "10,000 idle connections: RSS per connection"),
]
BROKERS = ["starling", "mosquitto", "rumqttd"]


def cell(report, name):
    if report is None:
        return "–"
    total, broker, harness = report["total"], report["broker"], report["harness"]
    if name == "conn-idle":
        return f"{broker['rss_bytes_per_connection'] / 1024:.1f} KiB"
    lost = total["lost"] + total["duplicates"]
    loss = f" ({total['lost']} lost)" if lost else ""
    busy = " (harness saturated)" if harness.get("saturated") else ""
    if name.endswith("-max"):
        return f"{total['delivered_per_s']:,.0f}{loss}{busy}"
    p99 = total["latency"]["p99_us"]
    p99 = f"{p99 / 1000:.2f} ms" if p99 >= 1000 else f"{p99} µs"
    per = broker.get("cpu_us_per_delivered")
    per = f"{per:.2f} µs" if per is not None else "–"
    return f"{p99} / {per}{loss}"


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench-brokers")
    print("| scenario | " + " | ".join(BROKERS) + " |")
    print("| --- | " + " | ".join("---" for _ in BROKERS) + " |")
    for name, title in SCENARIOS:
        cells = []
        for broker in BROKERS:
            path = out / f"{broker}-{name}.json"
            report = json.loads(path.read_text()) if path.exists() else None
            cells.append(cell(report, name))
        print(f"| {title} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
