"""Bibliobus: stops of the tour, demand for mobile drive pickup there, the rule that opens and closes them,
analysts' overrides and their audit, manifests (demand, what-ifs and charts: `demand_routes`).
Entrypoints only."""

import services.events  # noqa: F401  (the event catalogue this service speaks: fills the registry)
from services.bibliobus import control, from_reservations, thresholds, tour, views
from services.bibliobus.demand_routes import DemandRoutes
from services.bibliobus.domain import at_a_stop, is_new_demand
from services.bibliobus.models import Base, Inbox, Outbox
from services.bibliobus.policy import Policy
from services.bibliobus.schemas import (
    PATH_IDS,
    DecisionSchema,
    HistoryQuerySchema,
    InterestSchema,
    ManifestSchema,
    NetworkThresholdsSchema,
    NewStopSchema,
    OverrideSchema,
    StopBodySchema,
    StopSchema,
    StopThresholdsSchema,
    ThresholdChangeSchema,
    ThresholdsSchema,
)
from services.common import (
    ANALYST,
    ANYONE,
    PATRON_OR_STAFF,
    TEAM,
    Configured,
    Database,
    DriveService,
    OutboxRelay,
    batch_event_handler,
    event_handler,
    now,
    once,
    once_each,
    route,
    timer,
)
from services.common.metrics import Reading


class BibliobusService(DemandRoutes, DriveService):
    name = "bibliobus"
    path_ids = PATH_IDS

    db = Database(Base, url_key="DB_URL")
    outbox = OutboxRelay("bibliobus", Outbox)
    policy = Configured(Policy)
    readings = (Reading("drive_bibliobus_stops_enabled", "Stops open for drive pickup", views.stops_enabled),)

    # --- the tour ----------------------------------------------------------------------------------------

    @route("GET", "/stops", roles=ANYONE, response=StopSchema(many=True),
           summary="Stops of the tour, with their demand and whether they are open for drive pickup")
    def list_stops(self, request, principal):
        with self.db.begin():
            return views.list_stops(self.db, self.policy, now())

    @route("POST", "/stops", roles=TEAM, body=NewStopSchema, response=StopSchema, status=201,
           summary="Add a stop to the tour (closed until demand or an analyst opens it)")
    def add_stop(self, request, principal, body):
        with self.db.begin():
            stop = tour.add_stop(self.db, self.outbox, self.policy, body, now())
            return views.stop_detail(self.db, self.policy, stop.id, now())

    @route("PUT", "/stops/<stop_id>", roles=TEAM, body=StopBodySchema, response=StopSchema,
           summary="Change a stop: name, district, position, schedule, capacity")
    def change_stop(self, request, principal, stop_id, body):
        with self.db.begin():
            tour.change_stop(self.db, self.outbox, self.policy, stop_id, body, now())
            return views.stop_detail(self.db, self.policy, stop_id, now())

    @route("GET", "/stops/<stop_id>", roles=ANYONE, response=StopSchema, summary="One stop")
    def get_stop(self, request, principal, stop_id):
        with self.db.begin():
            return views.stop_detail(self.db, self.policy, stop_id, now())

    @route("GET", "/stops/<stop_id>/manifest", roles=TEAM, response=ManifestSchema,
           summary="Ready reservations to load for the stop's next visit, within its capacity")
    def manifest(self, request, principal, stop_id):
        with self.db.begin():
            return views.manifest(self.db, self.policy, stop_id, now())

    @route("POST", "/stops/<stop_id>/interest", roles=PATRON_OR_STAFF, body=InterestSchema, response=StopSchema,
           status=201, summary="“I would collect at this stop”: a patron, or staff taking a phone call")
    def register_interest(self, request, principal, stop_id, body):
        principal.require_card(body["patron"])
        with self.db.begin():
            control.record_interest(self.db, self.outbox, self.policy, stop_id, body["patron"], principal.subject,
                                   now())
            return views.stop_detail(self.db, self.policy, stop_id, now())

    # --- analysts' control -------------------------------------------------------------------------------

    @route("POST", "/stops/<stop_id>/override", roles=ANALYST, body=OverrideSchema, response=StopSchema,
           summary="Force the stop on or off, or give it back to the rule (auto), saying why")
    def override(self, request, principal, stop_id, body):
        with self.db.begin():
            stop = tour.find(self.db, stop_id, lock=True)
            control.take_control(self.db, self.outbox, self.policy, stop, body["mode"], body["reason"],
                                 principal.subject, now())
            return views.stop_detail(self.db, self.policy, stop_id, now())

    @route("GET", "/stops/<stop_id>/history", roles=TEAM, query=HistoryQuerySchema,
           response=DecisionSchema(many=True), summary="Every decision about the stop, newest first")
    def history(self, request, principal, stop_id, query):
        with self.db.begin():
            return views.history(self.db, stop_id, query["limit"])

    @route("GET", "/thresholds", roles=TEAM, response=NetworkThresholdsSchema,
           summary="The network's thresholds and demand window")
    def get_thresholds(self, request, principal):
        with self.db.begin():
            return thresholds.describe(self.db, self.policy)

    @route("PUT", "/thresholds", roles=ANALYST, body=ThresholdsSchema, response=NetworkThresholdsSchema,
           summary="Set the network's thresholds and window (applied at once), saying why")
    def set_thresholds(self, request, principal, body):
        with self.db.begin():
            return thresholds.set_network(self.db, self.outbox, self.policy, body, principal.subject, now())

    @route("GET", "/thresholds/history", roles=TEAM, query=HistoryQuerySchema,
           response=ThresholdChangeSchema(many=True),
           summary="Every change of the network's thresholds, newest first: who, when, old and new values, why")
    def thresholds_history(self, request, principal, query):
        with self.db.begin():
            return thresholds.history(self.db, query["limit"])

    @route("PUT", "/stops/<stop_id>/thresholds", roles=ANALYST, body=StopThresholdsSchema, response=StopSchema,
           summary="A stop's own thresholds (null: the network's), saying why")
    def set_stop_thresholds(self, request, principal, stop_id, body):
        with self.db.begin():
            thresholds.set_stop(self.db, self.outbox, self.policy, stop_id, body, principal.subject, now())
            return views.stop_detail(self.db, self.policy, stop_id, now())

    @timer("DEMAND_EVALUATION_SECONDS")
    def evaluation_round(self):
        with self.db.begin():
            control.run_round(self.db, self.outbox, self.policy, now())

    # --- reservations' events ----------------------------------------------------------------------------

    @batch_event_handler("reservations", "reservation_placed")
    def on_reservation_placed(self, batch):
        at_stops = [event for event in batch if is_new_demand(event.data)]
        if at_stops:
            with once_each(self.db, Inbox, at_stops) as fresh:
                from_reservations.record_placed(self.db, self.outbox, self.policy, fresh, now())

    @event_handler("reservations", "reservation_ready")
    def on_reservation_ready(self, event):
        if at_a_stop(event.data):
            self._apply(event, lambda db, data: from_reservations.record_ready(db, data, now()))

    @event_handler("reservations", "reservation_collected")
    def on_reservation_collected(self, event):
        self._close(event, "collected")

    @event_handler("reservations", "reservation_cancelled")
    def on_reservation_cancelled(self, event):
        self._close(event, "cancelled")

    @event_handler("reservations", "reservation_expired")
    def on_reservation_expired(self, event):
        self._close(event, "expired")

    def _close(self, event, status):
        if at_a_stop(event.data):
            self._apply(event, lambda db, data: from_reservations.record_closed(db, data, status, now()))

    def _apply(self, event, effect):
        with once(self.db, Inbox, event) as new:
            if new:
                effect(self.db, event.data)
