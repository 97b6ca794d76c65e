"""`drive check` end to end: the command as ops run it, against the four services as processes (two replicas
each), after a burst of reservations cancelled the moment they are placed, and after events lost
on the way (a queue purged while inventory was down), which `--fix` repairs through the normal events."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from kombu import Connection

from tests.e2e.helpers import import_catalogue
from tests.helpers import wait_for

SERVICES = ("reservations", "inventory", "notifications", "bibliobus")


def drive_check(system, *args: str) -> tuple[int, dict]:
    env = {**os.environ, "AMQP_URI": system.amqp_uri,
           **{f"{name.upper()}_URL": url for name, url in system.live().items()}}
    done = subprocess.run([sys.executable, "-m", "services.cli", "check", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def start_all(system, token):
    clients = system.start_many({name: {} for name in SERVICES})
    for client in clients.values():
        client.headers = token("staff")
    return clients


def test_reservations_cancelled_as_soon_as_placed_leave_nothing_held(system, token):
    clients = start_all(system, token)
    rows = "".join(f",Titre {n},Auteur,book,B-{n},central,R {n}\n" for n in range(6))
    import_catalogue(system, clients["inventory"], rows, 6)
    titles = [t["id"] for t in clients["inventory"].get("/titles", params={"q": "titre", "limit": 10}).json()["titles"]]

    def place_then_cancel(n: int) -> str:
        card = f"C{7000 + n}"
        patron = token("patron", card)
        placed = clients["reservations"].post("/reservations", headers=patron, json={
            "patron": card, "pickup_point": "central-adult", "titles": [titles[n % 6], titles[(n + 1) % 6]]})
        assert placed.status_code == 201, placed.text
        rid = placed.json()["id"]
        if n % 3:  # two in three change their mind at once
            assert clients["reservations"].post(f"/reservations/{rid}/cancel", headers=patron).status_code == 200
        return rid

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(place_then_cancel, range(30)))

    code, report = drive_check(system, "--wait", "30")
    assert (code, report["findings"]) == (0, [])
    assert all(t["agrees"] for t in report["titles"])
    assert sum(t["open_lines"] for t in report["titles"]) == 20  # the ten kept, two lines each


def queue_depth(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def purge(amqp_uri: str, queue: str) -> None:
    with Connection(amqp_uri) as conn:
        conn.default_channel.queue_purge(queue)


def test_events_lost_while_inventory_was_down_are_found_and_repaired(system, token):
    clients = start_all(system, token)
    import_catalogue(system, clients["inventory"], ",Titre A,Auteur,book,A-1,central,R A\n"
                                                   ",Titre B,Auteur,book,B-1,central,R B\n", 2)
    found = clients["inventory"].get("/titles", params={"q": "titre"}).json()["titles"]
    first, second = sorted(found, key=lambda t: t["title"])
    cancelled = clients["reservations"].post("/reservations", json={
        "patron": "C8001", "pickup_point": "central-adult", "titles": [first["id"]]}).json()["id"]
    system.tap.wait("items_allocated", reservation_id=cancelled)

    clients["inventory"].stop()  # inventory goes down, both replicas
    assert clients["reservations"].post(f"/reservations/{cancelled}/cancel").status_code == 200
    stuck = clients["reservations"].post("/reservations", json={
        "patron": "C8002", "pickup_point": "central-adult", "titles": [second["id"]]}).json()["id"]
    for event_type in ("reservation_cancelled", "reservation_placed"):  # … and what it missed is lost
        queue = f"evt-reservations-{event_type}--inventory.on_{event_type}"
        wait_for(lambda q=queue: queue_depth(system.amqp_uri, q) == 1, what=f"the event in {queue}")
        purge(system.amqp_uri, queue)
    inventory = system.start("inventory")

    code, report = drive_check(system, "--stuck-after", "0")
    assert code == 1
    assert {(f["kind"], f["subject"]) for f in report["findings"]} == {
        ("held_for_closed_line", cancelled), ("stuck_placed", stuck)}

    code, report = drive_check(system, "--fix", "--stuck-after", "0")
    assert (code, report["findings"]) == (0, [])
    assert {(r["reservation_id"], r["announced"]) for r in report["repaired"]} == {
        (cancelled, "reservation_cancelled"), (stuck, "reservation_placed")}
    assert clients["reservations"].get(f"/reservations/{stuck}").json()["status"] == "allocated"
    assert inventory.get("/copies/A-1", headers=token("staff")).json()["status"] == "available"
    said_again = system.tap.of_type("reservation_cancelled", reservation_id=cancelled)
    assert [m["data"]["reannounced"] for m in said_again] == [False, True]
