"""The PromQL of the Grafana dashboard and the alert rules (infra/), and the metric names it reads."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "infra" / "grafana" / "drive-dashboard.json"
ALERTS = ROOT / "infra" / "prometheus" / "alerts.yml"

IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
PROMQL_WORDS = {
    # functions and aggregations
    "abs", "absent", "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp_max", "clamp_min", "count",
    "count_over_time", "delta", "deriv", "floor", "histogram_quantile", "idelta", "increase", "irate",
    "label_replace", "max", "max_over_time", "min", "min_over_time", "rate", "resets", "round", "scalar", "sort",
    "sort_desc", "stddev", "sum", "sum_over_time", "time", "timestamp", "topk", "vector", "last_over_time",
    # keywords
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside label matchers, ranges, strings and
    `by (…)`-like clauses, that are not functions or keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    expr = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]?\b", "", expr)  # numbers and durations
    return {w for w in IDENTIFIER.findall(expr) if w not in PROMQL_WORDS}


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]
