"""Alembic environment for the clients service's own database."""

from overdracht.db import run_alembic_env
from services.clients.models import Base

run_alembic_env(Base.metadata)
