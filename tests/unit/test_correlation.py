"""Correlation ids: the envelope's two fields (written always, optional when read), the X-Request-ID rule, how a
cause passes from a handled event to what its handler publishes, and log lines that name service and chain."""

import io
import json
import logging
import uuid

import pytest
import structlog

import services.events  # noqa: F401  (fills the registry)
from services.common import correlation
from services.common.correlation import Cause, cause_of, caused_by, request_id, valid_id
from services.common.envelope import REGISTRY
from services.common.logs import JsonFormatter

COPY = {"barcode": "B1", "title_id": "t", "site": "central", "shelf_mark": "R 1", "reason": "released"}


@pytest.fixture(autouse=True)
def no_cause():
    correlation.set_cause(None)
    structlog.contextvars.clear_contextvars()
    yield
    correlation.set_cause(None)
    structlog.contextvars.clear_contextvars()


def test_the_envelope_carries_both_ids_and_reads_them_back():
    event = REGISTRY.build("inventory", "copy_available", COPY, cause=Cause("abc-123", "some-event"))
    message = event.to_message()
    assert (message["correlation_id"], message["causation_id"]) == ("abc-123", "some-event")
    again = REGISTRY.read(message)
    assert (again.correlation_id, again.causation_id) == ("abc-123", "some-event")
    assert cause_of(again) == Cause("abc-123", again.id)  # what its handler's events will carry


def test_an_older_message_without_the_ids_is_still_read_and_starts_a_chain_named_after_itself():
    message = REGISTRY.build("inventory", "copy_available", COPY).to_message()
    del message["correlation_id"], message["causation_id"]
    event = REGISTRY.read(message)  # no PermanentFailure
    assert event.correlation_id is None and event.causation_id is None
    assert cause_of(event) == Cause(event.id, event.id)


def test_outside_any_request_an_event_gets_a_chain_of_its_own():
    first = REGISTRY.build("inventory", "copy_available", COPY)
    second = REGISTRY.build("inventory", "copy_available", COPY)
    assert first.correlation_id and second.correlation_id and first.correlation_id != second.correlation_id
    assert first.causation_id is None


def test_what_is_published_carries_the_current_cause_and_a_batch_sets_it_event_by_event():
    correlation.set_cause(correlation.starting("req-1"))
    placed = REGISTRY.build("inventory", "copy_available", COPY)
    assert (placed.correlation_id, placed.causation_id) == ("req-1", "req-1")
    other = REGISTRY.read(REGISTRY.build("inventory", "copy_available", COPY, cause=Cause("req-2", "x")).to_message())
    with caused_by(placed):
        assert REGISTRY.build("inventory", "copy_available", COPY).causation_id == placed.id
        with caused_by(other):
            inner = REGISTRY.build("inventory", "copy_available", COPY)
            assert (inner.correlation_id, inner.causation_id) == ("req-2", other.id)
        assert REGISTRY.build("inventory", "copy_available", COPY).correlation_id == "req-1"
    assert correlation.current() == Cause("req-1", "req-1")  # restored after the block


@pytest.mark.parametrize("header", ["abc-123", "0f8b3c52-5d7e-4c55-9d0e-3c1f1f2a9b10", "Root=1-6789:ab/c+d_e.f",
                                    "x" * 128])
def test_a_valid_request_id_is_kept(header):
    assert request_id(header) == header


@pytest.mark.parametrize("header", [None, "", " ", "x" * 129, "abc 123", "abc\n123", "a\"b", "<script>", "é",
                                    "-leading-dash", "a;b", "a\x00b"])
def test_an_invalid_request_id_is_replaced_by_a_new_uuid(header):
    assert valid_id(header) is None
    generated = request_id(header)
    assert str(uuid.UUID(generated)) == generated and generated != header


def _line(record_logger, action):
    """What `action` logs on `record_logger`, as a service's console handler writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="inventory"))
    record_logger.addHandler(handler)
    try:
        action()
    finally:
        record_logger.removeHandler(handler)
    return stream.getvalue()


def test_a_log_line_is_one_json_object_with_service_correlation_and_the_traceback_inside():
    logger = logging.getLogger("tests.correlation")
    logger.setLevel(logging.INFO)
    correlation.set_cause(correlation.starting("abc-123"))

    def fail():
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logger.exception("it failed\nbadly", extra={"reservation_id": "R1"})

    output = _line(logger, action=fail)
    lines = output.splitlines()
    assert len(lines) == 1, output
    record = json.loads(lines[0])
    assert record["service"] == "inventory" and record["correlation_id"] == "abc-123"
    assert record["reservation_id"] == "R1" and record["level"] == "error"
    assert "Traceback" in record["exception"] and "ValueError: boom" in record["exception"]


def test_a_warning_becomes_a_log_line():
    import warnings

    logging.captureWarnings(False)  # pytest restores `warnings.showwarning` after each test, logging does not know

    def warn():
        JsonFormatter(service="inventory")  # configuring the formatter routes warnings to the log
        # What `warnings.warn` calls to print (pytest records warnings itself, so it is called directly here).
        warnings.showwarning("something is deprecated", DeprecationWarning, __file__, 1)

    try:
        output = _line(logging.getLogger("py.warnings"), action=warn)
    finally:
        logging.captureWarnings(False)
    record = json.loads(output.strip().splitlines()[-1])
    assert record["service"] == "inventory" and "something is deprecated" in record["event"]
