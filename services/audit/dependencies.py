"""The audit service's checkpoint writer, as a nameko dependency."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session

from overdracht import config
from services.audit.checkpoints import CheckpointStore, file_store, write_checkpoint


class CheckpointWriter:
    """What the service sees as `self.checkpoints`: the store and the key to sign with."""

    def __init__(self, store: CheckpointStore, key: Ed25519PrivateKey) -> None:
        self.store = store
        self._key = key

    def write(self, session: Session) -> dict[str, Any] | None:
        """Sign the chain's head when it moved; None when it did not."""
        return write_checkpoint(session, self.store, self._key)


class Checkpoints(DependencyProvider):
    """Reads the key at start-up: an audit service that cannot sign refuses to start."""

    def setup(self) -> None:
        self.writer = CheckpointWriter(file_store(), config.private_key("audit_checkpoint"))

    def get_dependency(self, worker_ctx: Any) -> CheckpointWriter:
        return self.writer
