"""A service started as ops start it (`nameko run` with its config.yaml) writes nothing but JSON log lines that name
it: from its start (eventlet's deprecation warning) through answered, refused and failed requests (a traceback
is a field of its line) to its stop on SIGTERM; and an answer echoes its X-Request-ID, which its lines carry."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from nameko.testing.utils import find_free_port
from sqlalchemy import create_engine, text

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _collect(stream, into: list[tuple[str, str]], name: str) -> None:
    for raw in iter(stream.readline, b""):
        into.append((name, raw.decode("utf-8", "replace").rstrip("\n")))


@pytest.mark.time_limit(120)
def test_every_line_of_a_running_service_is_json_naming_it(make_database, rabbit_config, token):
    db_url = make_database("reservations")
    port = find_free_port()
    env = {**os.environ, "DRIVE_ENV": "dev", "AMQP_URI": rabbit_config["AMQP_URI"], "RESERVATIONS_DB_URL": db_url,
           "RESERVATIONS_ADDRESS": f"127.0.0.1:{port}", "LOG_LEVEL": "INFO"}
    env.pop("PYTHONWARNINGS", None)  # as a fresh shell starts it
    env.pop("EVENTLET_TESTS", None)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "nameko"), "run", "--config", "services/reservations/config.yaml",
         "services.reservations.service:ReservationsService"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[tuple[str, str]] = []
    readers = [threading.Thread(target=_collect, args=(stream, lines, name), daemon=True)
               for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))]
    for reader in readers:
        reader.start()
    base, staff = f"http://127.0.0.1:{port}", token("staff")
    try:
        def up():
            try:
                return requests.get(f"{base}/openapi.json", timeout=2).status_code == 200
            except requests.ConnectionError:
                return process.poll() is not None  # died: stop waiting, the asserts below say why
        wait_for(up, timeout=60, what="the service answering")
        assert process.poll() is None, "\n".join(line for _, line in lines)

        answered = requests.get(f"{base}/pickup-points", headers={**staff, "X-Request-ID": "abc-123"}, timeout=5)
        assert answered.status_code == 200 and answered.headers["X-Request-ID"] == "abc-123"
        missing = requests.get(f"{base}/no-such-route", headers={"X-Request-ID": "abc-404"}, timeout=5)
        assert missing.status_code == 404 and missing.headers["X-Request-ID"] == "abc-404"
        refused = requests.post(f"{base}/reservations", json={}, timeout=5)  # no token: 401
        assert refused.status_code == 401 and refused.headers["X-Request-ID"]
        invalid = requests.post(f"{base}/reservations", data=b"{not json", headers={
            **staff, "Content-Type": "application/json", "X-Request-ID": "bad id with spaces"}, timeout=5)
        assert invalid.status_code == 400 and invalid.headers["X-Request-ID"] != "bad id with spaces"
        # A failure the service does not expect: its table gone, the request fails with a traceback in the log.
        engine = create_engine(db_url)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE pickup_points CASCADE"))
        engine.dispose()
        failed = requests.get(f"{base}/pickup-points", headers={**staff, "X-Request-ID": "abc-500"}, timeout=5)
        assert failed.status_code == 500 and failed.headers["X-Request-ID"] == "abc-500"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=5)

    assert len(lines) >= 5, lines
    records = []
    for stream, line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line on {stream}: {line!r}\nall lines:\n" + "\n".join(shown for _, shown in lines))
        assert isinstance(record, dict) and record.get("service") == "reservations", line
        records.append(record)
    with_traceback = [r for r in records if "Traceback" in r.get("exception", "")]
    assert with_traceback and with_traceback[0]["correlation_id"] == "abc-500", records
    assert any(r.get("correlation_id") == "abc-123" and r.get("entrypoint") == "list_pickup_points"
               for r in records), records
