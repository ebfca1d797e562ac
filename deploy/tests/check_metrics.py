"""Checks that the alert rules and the Grafana dashboard use only metrics, and labels,
that tandem-cloud really serves.

    python3 check_metrics.py SCRAPE_FILE alerts.yml dashboard.json

SCRAPE_FILE is a /metrics scrape of a server that has answered, streamed and refused
(429) requests, so that every metric family has a series. Prints each problem; exits 1 if
there is one.
"""
import json
import re
import sys

import yaml

# Labels Prometheus itself adds to every scraped series, and the histogram bucket label.
TARGET_LABELS = {"instance", "job", "service"}
SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def scraped(path):
    """Series names -> label names seen, from an OpenMetrics text scrape."""
    names = {}
    for line in open(path, encoding="utf-8"):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?", line)
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', match.group(3) or ""))
        names.setdefault(match.group(1), set()).update(labels)
    return names


def alert_exprs(path):
    rules = yaml.safe_load(open(path, encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield "alert " + rule["alert"], rule["expr"]


def dashboard_exprs(path):
    dash = json.load(open(path, encoding="utf-8"))

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                yield "panel " + repr(panel["title"]), target["expr"]
            yield from walk(panel.get("panels", []))

    yield from walk(dash["panels"])
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if query:
            yield "variable " + var["name"], query


def check(where, expr, series):
    problems = []
    used = set()
    for match in re.finditer(r"\b(tandem_[a-z0-9_]+)\s*(\{([^}]*)\})?", expr):
        name = match.group(1)
        used.add(name)
        if name not in series:
            problems.append(f"{where}: metric {name} is not served by tandem-cloud")
            continue
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", match.group(3) or ""):
            if label not in series[name] | TARGET_LABELS:
                problems.append(f"{where}: {name} has no label {label!r} (it has {sorted(series[name])})")
    known = TARGET_LABELS | {"le"}
    for name in used:
        known |= series.get(name, set())
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        for label in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", clause):
            if label not in known:
                problems.append(f"{where}: groups by {label!r}, a label none of its metrics has")
    for label in re.findall(r"\$labels\.([a-zA-Z_]+)", expr):
        if label not in known:
            problems.append(f"{where}: uses $labels.{label}, which its series do not have")
    return problems, used


def main():
    scrape, alerts, dashboard = sys.argv[1:4]
    series = scraped(scrape)
    families = {re.sub("(%s)$" % "|".join(SUFFIXES), "", n) for n in series if n.startswith("tandem_")}
    problems = []
    used_anywhere = set()
    for where, expr in list(alert_exprs(alerts)) + list(dashboard_exprs(dashboard)):
        found, used = check(where, expr, series)
        problems += found
        used_anywhere |= {re.sub("(%s)$" % "|".join(SUFFIXES), "", n) for n in used}
    # The dashboard should show every family the server has.
    dash_used = set()
    for where, expr in dashboard_exprs(dashboard):
        dash_used |= {re.sub("(%s)$" % "|".join(SUFFIXES), "", n) for n in re.findall(r"\btandem_[a-z0-9_]+", expr)}
    for family in sorted(families - dash_used):
        problems.append(f"dashboard: no panel shows {family}")
    for problem in problems:
        print(problem)
    print(f"{len(families)} metric families served, {len(used_anywhere)} used by alerts and dashboard")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
