"""The HTTP routes of demand, what analysts look at, as JSON and as PNG charts: a stop's demand day by day, the
map of the stops, and what-ifs. Entrypoints only, mixed into `BibliobusService` (which brings `db` and `policy`)."""

from datetime import UTC, datetime

from werkzeug.wrappers import Response

from services.bibliobus import charts, views
from services.bibliobus.schemas import (
    DemandQuerySchema,
    DemandSchema,
    FormatQuerySchema,
    WhatIfResultSchema,
    WhatIfSchema,
)
from services.common.http import route

TEAM = ("staff", "analyst")


def now() -> datetime:
    return datetime.now(UTC)


def png(data: bytes) -> Response:
    return Response(data, mimetype="image/png")


class DemandRoutes:
    @route("GET", "/stops/<stop_id>/demand", roles=TEAM, query=DemandQuerySchema, response=DemandSchema,
           summary="The stop's demand now and day by day, against its thresholds")
    def demand(self, request, principal, stop_id, query):
        with self.db.begin():
            return views.demand_report(self.db, self.policy, stop_id, query["days"], now())

    @route("GET", "/stops/<stop_id>/demand.png", roles=TEAM, query=DemandQuerySchema,
           summary="The same, as a chart (PNG)")
    def demand_chart(self, request, principal, stop_id, query):
        with self.db.begin():
            report = views.demand_report(self.db, self.policy, stop_id, query["days"], now())
        return png(charts.demand_png(report))

    @route("GET", "/map.png", roles=TEAM, summary="Stops at their positions, sized by demand, coloured by state")
    def map_chart(self, request, principal):
        with self.db.begin():
            stops = views.list_stops(self.db, self.policy, now())
        return png(charts.map_png(stops))

    @route("POST", "/what-if", roles=TEAM, body=WhatIfSchema, query=FormatQuerySchema, response=WhatIfResultSchema,
           summary="Replay a past period's demand under other thresholds: per stop and day, open or not "
                   "(?format=png for a chart)")
    def what_if(self, request, principal, body, query):
        with self.db.begin():
            result = views.what_if(self.db, self.policy, body, now())
        return png(charts.what_if_png(result)) if query["format"] == "png" else result

