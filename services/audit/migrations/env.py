"""Alembic environment for the audit service's own database."""

from overdracht.db import run_alembic_env
from services.audit.models import Base

run_alembic_env(Base.metadata)
