"""Metrics without a broker: the rules behind the labels, one registry per container, and the shape of the
Grafana dashboard and of the alert rules shipped in infra/ (promtool checks the rules too, when installed)."""

import json
import shutil
import subprocess

import pytest
import yaml
from marshmallow import ValidationError
from prometheus_client.parser import text_string_to_metric_families

from services.common.errors import PermanentFailure
from services.common.messaging import failure_outcome
from services.common.metrics import NOTIFICATION_OUTCOMES, Instruments, method_label
from tests.promql import ALERTS, DASHBOARD, alert_exprs, dashboard_exprs, promql_metric_names


def samples(instruments: Instruments) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(instruments.render().decode()) for s in f.samples}


@pytest.mark.parametrize(("exc", "attempt", "outcome"), [
    (RuntimeError, 1, "retried"), (RuntimeError, 2, "retried"), (RuntimeError, 3, "dead_lettered"),
    (RuntimeError, 4, "dead_lettered"), (PermanentFailure, 1, "dead_lettered"), (ValidationError, 1, "dead_lettered"),
])
def test_a_failed_delivery_is_retried_until_its_last_attempt_unless_it_can_never_succeed(exc, attempt, outcome):
    assert failure_outcome(exc, attempt, attempts_allowed=3) == outcome


def test_http_methods_outside_the_known_ones_share_one_label():
    assert [method_label(m) for m in ("GET", "DELETE", "FOOBAR", "get", "PROPFIND")] == [
        "GET", "DELETE", "OTHER", "OTHER", "OTHER"]


def test_each_container_counts_in_its_own_registry():
    one, other = Instruments("inventory"), Instruments("inventory")
    one.request("/titles/<title_id>", "GET", 200, 0.01)
    one.event("title_catalogued", "done")
    one.event("title_catalogued", "duplicate", 0)  # nothing: no series for a count of zero
    assert samples(one)[("drive_http_requests_total", (("method", "GET"), ("route", "/titles/<title_id>"),
                                                       ("service", "inventory"), ("status", "200")))] == 1
    assert samples(one)[("drive_events_handled_total", (("event_type", "title_catalogued"), ("outcome", "done"),
                                                        ("service", "inventory")))] == 1
    assert not any(name == "drive_events_handled_total" and ("outcome", "duplicate") in labels
                   for name, labels in samples(one))
    assert not any(name.startswith(("drive_http_requests", "drive_events")) for name, _ in samples(other))


class Delivery:
    def __init__(self, channel: str, status: str) -> None:
        self.channel, self.status = channel, status


def test_notifications_are_counted_by_outcome_only_where_a_service_sends_them():
    instruments = Instruments("notifications")
    assert not any(name.startswith("drive_notifications") for name, _ in samples(instruments))
    instruments.count_notifications(("email", "sms"))
    instruments.count_notifications(("email", "sms"))  # a second start registers nothing twice
    instruments.notifications_settled([Delivery("email", "sent"), Delivery("email", "sent"),
                                       Delivery("sms", "pending"), Delivery("sms", "obsolete")])
    counted = {labels: value for (name, labels), value in samples(instruments).items()
               if name == "drive_notifications_total"}
    assert len(counted) == 2 * len(NOTIFICATION_OUTCOMES)  # every channel and outcome from zero
    assert counted[(("channel", "email"), ("outcome", "sent"), ("service", "notifications"))] == 2
    assert counted[(("channel", "sms"), ("outcome", "obsolete"), ("service", "notifications"))] == 1
    assert sum(counted.values()) == 3  # the retry (pending) is not an outcome


def test_the_dashboard_is_an_importable_grafana_dashboard():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat"} and panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        assert all(t["expr"].count("(") == t["expr"].count(")") for t in panel["targets"]), panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for subject in ("request rate", "latency p95", "error rate", "events handled", "outbox backlog", "oldest",
                    "dead letters", "notifications", "stops enabled", "timers", "services up"):
        assert subject in titles, subject


def test_the_alert_rules_cover_what_stops_the_library_lending():
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in rules]
    assert len(set(names)) == len(names)
    assert {"DriveServiceDown", "DriveOutboxStuck", "DriveDeadLetters", "DriveTimerNotRunning"} <= set(names)
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["expr"].count("(") == rule["expr"].count(")")
    by_name = {rule["alert"]: rule["expr"] for rule in rules}
    assert "> 300" in by_name["DriveOutboxStuck"] and "drive_outbox_oldest_unsent_age_seconds" in by_name[
        "DriveOutboxStuck"]
    assert "up" in promql_metric_names(by_name["DriveServiceDown"]) and "== 0" in by_name["DriveServiceDown"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_alert_rules():
    subprocess.run(["promtool", "check", "rules", str(ALERTS)], check=True)


def test_promql_names_are_read_from_expressions():
    assert promql_metric_names('histogram_quantile(0.95, sum by (le, route) (rate(drive_http_request_duration_'
                               'seconds_bucket{service=~"$service"}[$__rate_interval])))') == {
        "drive_http_request_duration_seconds_bucket"}
    assert promql_metric_names('time() - drive_timer_last_success_timestamp_seconds > 3 * on (service, timer) '
                               'drive_timer_interval_seconds') == {"drive_timer_last_success_timestamp_seconds",
                                                                   "drive_timer_interval_seconds"}
    assert promql_metric_names('up{job=~"drive.*"} == 0') == {"up"}
    assert promql_metric_names("max(drive_dead_letters) > 0 and 1e3 > 2.5") == {"drive_dead_letters"}
    assert all(promql_metric_names(expr) for expr in dashboard_exprs() + alert_exprs())
