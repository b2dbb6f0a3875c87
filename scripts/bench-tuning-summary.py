#!/usr/bin/env python3
"""Prints the JSON reports of scripts/bench-tuning.sh as one Markdown table: a row per
configuration and scenario, every repeat's figures side by side (`a · b`) so their spread shows."""

import json
import pathlib
import re
import sys

SCENARIOS = {
    "conn": "RSS per idle connection",
    "p2p-idle": "p50 / p99 / broker CPU",
    "fanout-100": "p50 / p99 / broker CPU",
    "p2p-20k": "p99 / p99.9 / broker µs per msg",
    "p2p-max": "delivered/s / p99",
}


def ms(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us} µs"


def figures(report, scenario):
    total, broker = report["total"], report["broker"]
    lat = total["latency"]
    lost = f" ({total['lost']} lost)" if total["lost"] else ""
    if scenario == "conn":
        return f"{broker['rss_bytes_per_connection'] / 1024:.1f} KiB"
    if scenario in ("p2p-idle", "fanout-100"):
        return f"{ms(lat['p50_us'])} / {ms(lat['p99_us'])} / {broker['cpu_pct']:.1f}%{lost}"
    if scenario == "p2p-20k":
        return f"{ms(lat['p99_us'])} / {ms(lat['p999_us'])} / {broker['cpu_us_per_delivered']:.1f}{lost}"
    return f"{total['delivered_per_s']:,.0f} / {ms(lat['p99_us'])}{lost}"


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench-tuning")
    runs = {}
    pattern = re.compile(r"^(.*)-r(\d+)-(" + "|".join(SCENARIOS) + r")\.json$")
    for path in sorted(out.glob("*.json")):
        match = pattern.match(path.name)
        if match:
            config, repeat, scenario = match.groups()
            runs.setdefault((config, scenario), {})[int(repeat)] = json.loads(path.read_text())
    print("| configuration | scenario | figures | runs |")
    print("| --- | --- | --- | --- |")
    def order(item):
        (config, scenario), _ = item
        number = re.search(r"(\d+)$", config)
        return (config.rstrip("0123456789"), int(number.group(1)) if number else 0, scenario)

    for (config, scenario), reports in sorted(runs.items(), key=order):
        cells = " · ".join(figures(reports[r], scenario) for r in sorted(reports))
        print(f"| {config} | {scenario} | {SCENARIOS[scenario]} | {cells} |")


if __name__ == "__main__":
    main()
