"""Alembic environment for the documents service's own database."""

from overdracht.db import run_alembic_env
from services.documents.models import Base

run_alembic_env(Base.metadata)
