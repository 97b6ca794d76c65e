"""Inventory: the catalogue, copies, waitlists and quarantine. Entrypoints only; rules live elsewhere."""

import services.events  # noqa: F401  (the event catalogue this service speaks: fills the registry)
from services.common import (
    ANYONE,
    OPS,
    STAFF,
    Configured,
    Database,
    DriveService,
    OutboxRelay,
    batch_event_handler,
    caused_by,
    event_handler,
    now,
    once,
    once_each,
    route,
    timer,
)
from services.inventory import allocation, audit, catalogue, shelves
from services.inventory.domain import allocates_now, parse_catalogue
from services.inventory.models import Base, Inbox, Outbox
from services.inventory.policy import Policy
from services.inventory.schemas import (
    PATH_IDS,
    CheckinResultSchema,
    CheckinSchema,
    CopySchema,
    HoldingsSchema,
    ImportResultSchema,
    NewCopySchema,
    NewTitleSchema,
    SearchQuerySchema,
    SearchResultSchema,
    TitleSchema,
)

IMPORT_MAX_BYTES = 32 * 1024 * 1024  # a CSV of some 300,000 copies; other bodies keep the edge's default


class InventoryService(DriveService):
    name = "inventory"
    path_ids = PATH_IDS

    db = Database(Base, url_key="DB_URL")
    outbox = OutboxRelay("inventory", Outbox)
    policy = Configured(Policy)

    # --- catalogue -------------------------------------------------------------------------------------

    @route("GET", "/titles", roles=ANYONE, query=SearchQuerySchema, response=SearchResultSchema,
           summary="Search the catalogue by title, author or ISBN, with availability per site")
    def search_titles(self, request, principal, query):
        with self.db.begin():
            return catalogue.search(self.db, query["q"], query["limit"], query["offset"], self.policy.sites)

    @route("GET", "/titles/<title_id>", roles=ANYONE, response=TitleSchema, summary="One title")
    def get_title(self, request, principal, title_id):
        with self.db.begin():
            return catalogue.title_detail(self.db, title_id, self.policy.sites)

    @route("POST", "/titles", roles=STAFF, body=NewTitleSchema, response=TitleSchema, status=201,
           summary="Catalogue a title")
    def add_title(self, request, principal, body):
        with self.db.begin():
            title = catalogue.add_title(self.db, self.outbox, **body)
            return catalogue.describe(self.db, [title], self.policy.sites)[0]

    @route("POST", "/titles/<title_id>/copies", roles=STAFF, body=NewCopySchema, response=CopySchema,
           status=201, summary="Add a copy of a title (it serves the title's waitlist first)")
    def add_copy(self, request, principal, title_id, body):
        with self.db.begin():
            copy = catalogue.add_copy(self.db, self.outbox, title_id, sites=self.policy.sites, **body)
            return catalogue.copy_detail(self.db, copy.barcode)

    @route("POST", "/catalogue/import", roles=STAFF, raw_body="text/csv", max_body=IMPORT_MAX_BYTES,
           response=ImportResultSchema, status=201, summary="Import titles and copies from CSV (all rows or none)")
    def import_catalogue(self, request, principal):
        rows = parse_catalogue(request.get_data(as_text=True), self.policy.sites)
        with self.db.begin():
            return catalogue.import_rows(self.db, self.outbox, rows, self.policy.sites)

    @route("GET", "/copies/<barcode>", roles=STAFF, response=CopySchema, summary="A copy, with its history")
    def get_copy(self, request, principal, barcode):
        with self.db.begin():
            return catalogue.copy_detail(self.db, barcode)

    # --- returns and quarantine ------------------------------------------------------------------------

    @route("POST", "/checkins", roles=STAFF, body=CheckinSchema, response=CheckinResultSchema, status=201,
           summary="Check a copy in (optionally backdated to the day it was dropped in the return box)")
    def check_in(self, request, principal, body):
        returned_at = self.policy.returned_at(body["returned_at"], now())
        with self.db.begin():
            copy, title = shelves.copy_with_title(self.db, body["barcode"])
            release_at = self.policy.quarantine.release_at(returned_at, title.material, copy.plastic_cover)
            returned = shelves.check_in(self.db, body["barcode"], returned_at, release_at)
            self.outbox.publish(self.db, "item_returned", returned)
        return {"barcode": returned["barcode"], "status": "quarantine", "returned_at": returned_at,
                "quarantine_until": release_at}

    @timer("QUARANTINE_CHECK_SECONDS")
    def release_from_quarantine(self):
        with self.db.begin():
            for copy in shelves.due_from_quarantine(self.db, now()):
                self.outbox.publish(self.db, *shelves.free_copy(self.db, copy, "quarantine_over"))

    @route("GET", "/audit/holdings", roles=OPS, response=HoldingsSchema,
           summary="Copies set aside and waitlist places, each with its reservation line (for `drive check`)")
    def audit_holdings(self, request, principal):
        with self.db.begin():
            return audit.holdings(self.db)

    # --- reservations' events --------------------------------------------------------------------------

    @batch_event_handler("reservations", "reservation_placed")
    def on_reservation_placed(self, batch):
        # The hot path: many reservations allocated in one transaction (services.common.batching).
        self._allocate([event for event in batch if allocates_now(event.data)])

    @event_handler("reservations", "reservation_released_to_allocation")
    def on_reservation_released_to_allocation(self, event):
        self._allocate([event])

    def _allocate(self, batch):
        if not batch:
            return
        with once_each(self.db, Inbox, batch) as fresh:
            outcomes = allocation.allocate(self.db, [
                allocation.Request(e.data["reservation_id"], e.data["pickup_point"]["site"], e.data["lines"])
                for e in fresh])
            for event, (allocated, waiting) in zip(fresh, outcomes, strict=True):
                with caused_by(event):  # each answer carries the correlation of the placement it answers
                    data = event.data
                    if data.get("reannounced"):  # `drive check --fix`: say all it holds, not only what is new
                        allocated, waiting = allocation.standing(self.db, data["reservation_id"],
                                                                 data["pickup_point"]["site"])
                    if allocated:
                        self.outbox.publish(self.db, "items_allocated", {
                            "reservation_id": data["reservation_id"], "lines": allocated, "reason": "placement"})
                    if waiting:
                        self.outbox.publish(self.db, "items_unavailable", {
                            "reservation_id": data["reservation_id"], "patron": data["patron"], "lines": waiting})

    @event_handler("reservations", "reservation_cancelled")
    def on_reservation_cancelled(self, event):
        self._close(event, "cancelled")

    @event_handler("reservations", "reservation_expired")
    def on_reservation_expired(self, event):
        self._close(event, "expired")

    @event_handler("reservations", "reservation_collected")
    def on_reservation_collected(self, event):
        with once(self.db, Inbox, event) as new:
            if new:
                shelves.lend(self.db, event.data["reservation_id"], event.data["loans"])

    def _close(self, event, why):
        with once(self.db, Inbox, event) as new:
            if new:
                titles = [line["title_id"] for line in event.data["lines"]]
                for type_, data in shelves.close(self.db, event.data["reservation_id"], titles, why):
                    self.outbox.publish(self.db, type_, data)
