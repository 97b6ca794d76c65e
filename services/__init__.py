import warnings

# eventlet announces its maintenance mode on import; nameko 2 needs it all the same (docs/stack-notes.md, "Warnings").
warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")

# The five services, as `nameko run` names them (`module:Class`: the bare module also holds the imported base class
# DriveService, which nameko would try to run). One list for the CLI, the setup check, the event table and benches.
SERVICE_CLASSES = {"reservations": "services.reservations.service:ReservationsService",
                   "inventory": "services.inventory.service:InventoryService",
                   "notifications": "services.notifications.service:NotificationsService",
                   "bibliobus": "services.bibliobus.service:BibliobusService",
                   "web": "services.web.service:WebService"}
# The services that own a database (migrations, `*_DB_URL`, an outbox); web keeps no state of its own.
DATABASES = ("reservations", "inventory", "notifications", "bibliobus")


def service_classes() -> list[type]:
    """The service classes (imported when asked: they bring nameko and every service's code)."""
    import importlib

    return [getattr(importlib.import_module(module), cls)
            for module, _, cls in (target.partition(":") for target in SERVICE_CLASSES.values())]
