from services.common.migrate import run_env
from services.reservations.models import Base

run_env(Base.metadata)
