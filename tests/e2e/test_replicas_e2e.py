"""Two replicas of every service on one database and one vhost, their timers short so that they overlap: each
cause has one effect. One `reservation_expired` per reservation past its deadline, one `loan_overdue` per loan and
reminder step, one message per event on the patron's channel (the SMTP server and the SMS gateway count them),
one release per copy out of quarantine, one switch per stop the rounds close, rounds counted once however many
replicas run them; and each event published once by the two relays. Each test also shows that both replicas
answered requests and ran their timers while the effects happened: else "one effect" would prove nothing."""

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, func, insert, select, update

from services.inventory.models import Copy
from services.reservations.models import Line, Loan, Reservation
from tests.e2e.helpers import import_catalogue, scalar
from tests.helpers import stop_body, wait_for

EXPIRED, OVERDUE = 40, 20  # reservations past their deadline, loans a reminder step overdue
COPIES = 30
ROUND_SECONDS, ROUNDS = 0.5, 8  # the demand rounds' period, and the rounds below the threshold that close a stop


def ran_meanwhile(service, entrypoint: str, since: datetime, until: datetime) -> list[int]:
    """How many times each replica's timer `entrypoint` ran between `since` and `until`."""
    return [sum(since <= at <= until for at in replica.timer_runs(entrypoint)) for replica in service.replicas]


def published_once(tap) -> None:
    """The two relays of each service share its outbox: no event went out twice."""
    tap.drain()
    assert [i for i, n in Counter(m["id"] for m in tap.seen).items() if n > 1] == []


def seed_due(url: str, now: datetime) -> tuple[list[str], list[str]]:
    """Ready reservations already past their pickup deadline and loans two days overdue, written in one
    transaction, so that both replicas' timers find them due at the same tick."""
    ready = [{"id": str(uuid.uuid4()), "patron": f"E{n:03d}", "pickup_point_id": "central-adult", "status": "ready",
              "channel": "web", "placed_at": now - timedelta(days=12), "ready_at": now - timedelta(days=11),
              "pickup_deadline": now - timedelta(minutes=1), "closed_at": None, "closed_by": None}
             for n in range(EXPIRED)]
    lent = [{"id": str(uuid.uuid4()), "patron": f"L{n:03d}", "pickup_point_id": "central-adult",
             "status": "collected", "channel": "web", "placed_at": now - timedelta(days=40),
             "ready_at": now - timedelta(days=39), "pickup_deadline": None, "closed_at": now - timedelta(days=38),
             "closed_by": "staff"} for n in range(OVERDUE)]
    lines = [{"id": str(uuid.uuid4()), "reservation_id": r["id"], "position": 0, "title_id": f"t-{r['patron']}",
              "title": f"Titre {r['patron']}", "material": "book",
              "status": "allocated" if r["status"] == "ready" else "collected", "needs_transfer": False}
             for r in ready + lent]
    loans = [{"id": str(uuid.uuid4()), "patron": r["patron"], "reservation_id": r["id"], "line_id": line["id"],
              "title_id": line["title_id"], "title": line["title"], "barcode": f"X-{r['patron']}",
              "started_at": now - timedelta(days=38), "due_at": now - timedelta(days=2), "reminder_step": 0}
             for r, line in zip(lent, lines[EXPIRED:], strict=True)]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Reservation), ready + lent)
        conn.execute(insert(Line), lines)
        conn.execute(insert(Loan), loans)
    engine.dispose()
    return [r["id"] for r in ready], [loan["id"] for loan in loans]


def test_two_replicas_expire_remind_and_notify_once_each(system, token, outside):
    mailbox, smtp_port, gateway = outside
    staff = token("staff")
    fast = {"LOG_LEVEL": "DEBUG", "EXPIRY_CHECK_SECONDS": "0.1", "OVERDUE_CHECK_SECONDS": "0.1"}
    started = system.start_many({
        "reservations": fast, "inventory": {},
        "notifications": {"LOG_LEVEL": "DEBUG", "NOTIFY_SEND_SECONDS": "0.1", "SMTP_HOST": "127.0.0.1",
                          "SMTP_PORT": str(smtp_port), "SMS_GATEWAY_URL": gateway.url,
                          "SMS_QUIET_START": "00:00", "SMS_QUIET_END": "00:00"}})  # no quiet hours: SMS go at once
    reservations, notifications = started["reservations"], started["notifications"]
    patrons = [f"E{n:03d}" for n in range(EXPIRED)] + [f"L{n:03d}" for n in range(OVERDUE)]
    by_sms = set(patrons[1::2])  # every other patron prefers SMS

    def contact(n: int) -> int:
        card = patrons[n]
        body = ({"phone": f"06 12 34 {n // 100:02d} {n % 100:02d}", "preferred_channel": "sms", "sms_consent": True}
                if card in by_sms else {"email": f"{card.lower()}@example.org"})
        return notifications.call("PUT", f"/patrons/{card}/contact", headers=staff, json=body).status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(contact, range(len(patrons)))) == {200}
    assert all(replica.answered > 0 for replica in notifications.replicas)

    since = datetime.now(UTC)
    expired, loans = seed_due(system.urls["reservations"], since)
    system.tap.wait("reservation_expired", count=EXPIRED, timeout=30)
    system.tap.wait("loan_overdue", count=OVERDUE, timeout=30)
    wait_for(lambda: len(mailbox.messages) + len(gateway.received) >= len(patrons), timeout=30,
             what="a message to every patron")
    quiet = datetime.now(UTC)
    wait_for(lambda: datetime.now(UTC) > quiet + timedelta(seconds=1.5), what="more ticks of every timer")
    until = datetime.now(UTC)

    said = Counter(m["data"]["reservation_id"] for m in system.tap.of_type("reservation_expired"))
    assert said == Counter(expired)  # each expired, by one replica
    reminded = Counter((m["data"]["loan_id"], m["data"]["reminder_step"]) for m in system.tap.of_type("loan_overdue"))
    assert reminded == Counter((loan, 1) for loan in loans)
    mails = Counter(m["To"] for m in mailbox.messages)
    texts = Counter(m["to"] for m in gateway.received)
    assert mails == Counter(f"{p.lower()}@example.org" for p in patrons if p not in by_sms)
    assert sorted(texts.values()) == [1] * len(by_sms)
    published_once(system.tap)

    # Both replicas' timers ran all along, not one replica alone: the claims, not luck, kept it to one effect.
    for service, entrypoint in ((reservations, "expire_uncollected"), (reservations, "remind_overdue"),
                                (notifications, "send_due")):
        runs = ran_meanwhile(service, entrypoint, since, until)
        assert all(n >= 5 for n in runs), f"{entrypoint} runs per replica: {runs}"


def test_two_replicas_release_each_copy_once_and_close_each_stop_once(system, token):
    staff, analyst = token("staff"), token("analyst", "analyste-1")
    started = system.start_many({
        "reservations": {},
        "inventory": {"LOG_LEVEL": "DEBUG", "QUARANTINE_CHECK_SECONDS": "0.1", "QUARANTINE_HOURS": "0.0025"},  # 9 s
        "bibliobus": {"LOG_LEVEL": "DEBUG", "DEMAND_EVALUATION_SECONDS": str(ROUND_SECONDS),
                      "STOP_CONSECUTIVE_EVALUATIONS": str(ROUNDS)}})
    inventory, bibliobus = started["inventory"], started["bibliobus"]
    inventory.headers, bibliobus.headers = staff, analyst
    rows = "".join(f",Titre {n % 10},Auteur,book,Q-{n:02d},central,R {n % 10}\n" for n in range(COPIES))
    import_catalogue(system, inventory, rows, 10)
    barcodes = [f"Q-{n:02d}" for n in range(COPIES)]
    engine = create_engine(system.urls["inventory"])
    with engine.begin() as conn:  # out on loan (how they went out is not the point)
        conn.execute(update(Copy).values(status="on_loan"))
    engine.dispose()

    # Copies returned together: their quarantine ends at one moment, under both replicas' timers.
    returned_at = datetime.now(UTC).replace(microsecond=0)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda b: inventory.post("/checkins", json={
            "barcode": b, "returned_at": returned_at.isoformat()}), barcodes))
    assert [a.status_code for a in answers] == [201] * COPIES, answers[0].text
    assert all(replica.answered > 0 for replica in inventory.replicas)
    release_at = datetime.fromisoformat(answers[0].json()["quarantine_until"])
    assert release_at > datetime.now(UTC), "the check-ins took longer than the quarantine: lengthen it"

    # Meanwhile, stops forced on then given back to the rule, with no demand: the rounds close each after ROUNDS.
    stops = [f"arret-{n}" for n in range(4)]
    given_back = {}
    for stop in stops:
        assert bibliobus.post("/stops", json=stop_body(stop)).status_code == 201
        for mode in ("on", "auto"):
            answer = bibliobus.post(f"/stops/{stop}/override", json={"mode": mode, "reason": "essai des tournées"})
            assert answer.status_code == 200, answer.text
        given_back[stop] = datetime.now(UTC)
    assert all(replica.answered > 0 for replica in bibliobus.replicas)

    system.tap.wait("copy_available", count=COPIES + COPIES, timeout=40)  # catalogued, then out of quarantine
    closed = system.tap.wait("stop_disabled", count=len(stops), timeout=30)
    wait_for(lambda: datetime.now(UTC) > max(release_at, *given_back.values()) + timedelta(seconds=2 * ROUND_SECONDS),
             timeout=30, what="more ticks of every timer")
    until = datetime.now(UTC)

    released = Counter(m["data"]["barcode"] for m in system.tap.of_type("copy_available", reason="quarantine_over"))
    assert released == Counter(barcodes)
    assert scalar(system.urls["inventory"], select(func.count()).select_from(Copy).where(
        Copy.status != "available")) == 0
    closed = system.tap.of_type("stop_disabled")
    assert sorted(m["data"]["stop_id"] for m in closed) == stops  # one switch each
    assert {(m["data"]["reason"], m["data"]["decided_by"]) for m in closed} == {("threshold", "rule")}
    for m in closed:
        # Rounds counted once however many replicas run them: ROUNDS of them take (ROUNDS - 1) periods at least
        # (one of slack for the timers' jitter); counted by both replicas they would take half as long.
        took = datetime.fromisoformat(m["data"]["decided_at"]) - given_back[m["data"]["stop_id"]]
        assert took >= timedelta(seconds=(ROUNDS - 2) * ROUND_SECONDS), f"{m['data']['stop_id']} closed after {took}"
    for stop in stops:
        history = bibliobus.get(f"/stops/{stop}/history").json()
        assert [a["action"] for a in history].count("disabled") == 1
    published_once(system.tap)

    for service, entrypoint, since in ((inventory, "release_from_quarantine", release_at),
                                       (bibliobus, "evaluation_round", min(given_back.values()))):
        runs = ran_meanwhile(service, entrypoint, since, until)
        assert all(n >= 2 for n in runs), f"{entrypoint} runs per replica: {runs}"
