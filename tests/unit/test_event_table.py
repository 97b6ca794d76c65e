"""README.md's "event → publisher → consumers" table is what the catalogue and the services' handlers say."""

import pytest

from services.common.envelope import REGISTRY, EventRegistry
from services.common.messaging import event_handler, handler_queues
from services.event_table import BEGIN, END, README, build_table, consumers, service_classes, with_table

REGENERATE = "regenerate it: python -m services.event_table"


def rows(table: str) -> dict[str, list[str]]:
    """event → [publisher, consumers, what it says], read back from the Markdown."""
    lines = table.strip().splitlines()[2:]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return {c[0].strip("`"): c[1:] for c in cells}


def copy_of(registry: EventRegistry, without: tuple[str, str] | None = None) -> EventRegistry:
    copied = EventRegistry()
    for kind in registry:
        if (kind.source, kind.type) != without:
            copied.register(kind.source, kind.type, kind.schema, kind.summary, kind.version)
    return copied


class Shelver:
    name = "shelver"

    @event_handler("inventory", "item_returned")
    def on_item_returned(self, event):
        pass

    @event_handler("inventory", "copy_available")
    def on_copy_available(self, event):
        pass


# (a) the committed README is what the code builds


def test_readme_table_equals_what_the_catalogue_and_handlers_build():
    text = README.read_text()
    assert BEGIN in text and END in text, "README.md lost the event table's markers"
    assert with_table(text, build_table()) == text, f"README.md's event table is stale: {REGENERATE}"


def test_every_catalogued_event_has_one_row_naming_its_publisher():
    table = rows(build_table())
    assert len(table) == len(list(REGISTRY)) >= 10
    for kind in REGISTRY:
        assert table[kind.type][0] == kind.source


# (b) consumers are read as `drive setup` reads them


def test_consumers_are_the_services_whose_handler_queues_drive_setup_declares():
    classes = service_classes()
    from_queues = set()
    for cls in classes:
        for queue in handler_queues(cls, {"AMQP_URI": "memory://"}):
            source, type_ = queue.name.removeprefix("evt-").split("--")[0].split("-", 1)
            from_queues.add((source, type_, cls.name))
    found = {(source, type_, name) for (source, type_), names in consumers(classes).items() for name in names}
    assert len(found) >= 20  # the services were read, not an empty list
    # The web service's handlers are broadcasts: a queue per process, made when it starts, declared by no setup.
    assert {(source, type_, name) for source, type_, name in found if name != "web"} == from_queues
    assert {type_ for _, type_, name in found if name == "web"} == {
        "patron_arrived", "reservation_ready", "pickup_slot_booked", "pickup_slot_cancelled", "reservation_collected",
        "reservation_claimed", "reservation_released"}


def test_known_consumers_appear():
    table = rows(build_table())
    assert table["reservation_placed"][1] == "bibliobus, inventory"
    assert table["items_allocated"][1] == "reservations"
    assert table["notification_sent"][1] == "—"


# (c) a change is noticed


def test_a_new_handler_makes_the_committed_table_stale():
    text = README.read_text()
    table = build_table(classes=[*service_classes(), Shelver])
    assert "shelver" in rows(table)["copy_available"][1]
    assert "shelver" in rows(table)["item_returned"][1]
    assert with_table(text, table) != text


def test_a_newly_catalogued_event_makes_the_committed_table_stale():
    registry = copy_of(REGISTRY)
    registry.register("bibliobus", "stop_visited", next(iter(REGISTRY)).schema, "A vehicle came to a stop.")
    table = build_table(registry)
    assert rows(table)["stop_visited"] == ["bibliobus", "—", "A vehicle came to a stop."]
    assert with_table(README.read_text(), table) != README.read_text()


def test_a_handler_of_an_event_the_catalogue_lacks_is_refused():
    registry = copy_of(REGISTRY, without=("inventory", "copy_available"))
    with pytest.raises(LookupError, match="copy_available"):
        build_table(registry, classes=[Shelver])


# (d) the markers


def test_with_table_replaces_only_what_lies_between_the_markers():
    text = f"before\n{BEGIN}\nold row\n{END}\nafter\n"
    assert with_table(text, "| new |\n") == f"before\n{BEGIN}\n| new |\n{END}\nafter\n"


def test_a_readme_without_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        with_table("no table here\n", "| new |\n")


def test_summaries_cannot_break_a_row():
    registry = EventRegistry()
    registry.register("inventory", "odd", next(iter(REGISTRY)).schema, "a | b\nc")
    assert rows(build_table(registry, classes=[]))["odd"] == ["inventory", "—", "a \\| b c"]
