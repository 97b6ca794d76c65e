"""Both services of the drive in this process (and the bibliobus service on request), each on its own fresh
PostgreSQL database, sharing a fresh RabbitMQ vhost: the integration tier, driven over HTTP and AMQP."""

from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from services.bibliobus.service import BibliobusService
from services.common.database import make_engine
from services.common.messaging import declare_topology
from services.demo import load_pickup_points
from services.inventory.service import InventoryService
from services.reservations.service import ReservationsService
from tests.helpers import Client, EventTap
from tests.integration.helpers import service_config


@dataclass
class Drive:
    reservations: Client
    inventory: Client
    tap: EventTap
    config: dict
    urls: dict
    bibliobus: Client | None = None


@pytest.fixture
def drive_factory(make_database, rabbit_config, container_factory, token):
    # Argument order matters: containers stop before the vhost and databases they use are removed.
    taps = []

    def start(reservations_extra: dict | None = None, inventory_extra: dict | None = None,
              bibliobus_extra: dict | None = None) -> Drive:
        """`bibliobus_extra` (even `{}`) starts the bibliobus service too."""
        urls = {"reservations": make_database("reservations"), "inventory": make_database("inventory")}
        engine = make_engine(urls["reservations"], pool_size=1)
        with Session(engine) as session, session.begin():
            load_pickup_points(session)
        engine.dispose()
        res_cfg = service_config(rabbit_config, urls["reservations"], **(reservations_extra or {}))
        inv_cfg = service_config(rabbit_config, urls["inventory"], **(inventory_extra or {}))
        declare_topology([ReservationsService, InventoryService], res_cfg)
        tap = EventTap(rabbit_config["AMQP_URI"], {"reservations.events": "#", "inventory.events": "#",
                                                   "bibliobus.events": "#"})
        taps.append(tap)
        container_factory(ReservationsService, res_cfg).start()
        container_factory(InventoryService, inv_cfg).start()
        staff = token("staff")
        drive = Drive(Client(f"http://{res_cfg['WEB_SERVER_ADDRESS']}", staff),
                      Client(f"http://{inv_cfg['WEB_SERVER_ADDRESS']}", staff), tap,
                      {"reservations": res_cfg, "inventory": inv_cfg}, urls)
        if bibliobus_extra is not None:
            urls["bibliobus"] = make_database("bibliobus")
            bib_cfg = service_config(rabbit_config, urls["bibliobus"], **bibliobus_extra)
            declare_topology([BibliobusService], bib_cfg)
            container_factory(BibliobusService, bib_cfg).start()
            drive.config["bibliobus"] = bib_cfg
            drive.bibliobus = Client(f"http://{bib_cfg['WEB_SERVER_ADDRESS']}", token("analyst", "analyst-1"))
        return drive

    yield start
    for tap in taps:
        tap.close()


@pytest.fixture
def drive(drive_factory):
    return drive_factory()
