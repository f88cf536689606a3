"""The time, shiftable in development and tests: locks of 15 minutes without waiting them out.

`OVERDRACHT_CLOCK_FILE` names a file holding a number of seconds that every reader of this
clock adds to the real time (a missing or empty file: none). Tests write it to move auth's
clock forward and remove it afterwards; every instance of a service reads the same file,
so a scaled service keeps one time. Production ignores the setting.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from overdracht import config

log = logging.getLogger(__name__)


def offset() -> timedelta:
    """How far this clock runs ahead of the real one (zero in production)."""
    name = config.get("OVERDRACHT_CLOCK_FILE")
    if not name or config.is_production():
        return timedelta(0)
    try:
        text = Path(name).read_text().strip()
    except FileNotFoundError:
        return timedelta(0)
    try:
        return timedelta(seconds=float(text)) if text else timedelta(0)
    except ValueError:
        log.warning("OVERDRACHT_CLOCK_FILE does not hold a number of seconds; ignored")
        return timedelta(0)


def now() -> datetime:
    """The current time in UTC, shifted by offset()."""
    return datetime.now(UTC) + offset()


def shift(path: Path, seconds: float) -> None:
    """Move a clock file's time by seconds more (tests); written whole, never half."""
    current = float(path.read_text().strip() or 0) if path.exists() else 0.0
    partial = path.with_suffix(".partial")
    partial.write_text(str(current + seconds))
    partial.replace(path)
