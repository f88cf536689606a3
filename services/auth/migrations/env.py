"""Alembic environment for the auth service's own database."""

from overdracht.db import run_alembic_env
from services.auth.models import Base

run_alembic_env(Base.metadata)
