"""The deploy files give production what `make run` gives development: restart, never give up."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "systemd").glob("*.service"))


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(path)
    return parser


@pytest.mark.parametrize("path", UNITS, ids=[u.name for u in UNITS])
def test_every_unit_restarts_whatever_ends_it_and_never_gives_up(path):
    unit = _unit(path)
    assert unit["Service"]["Restart"] == "always"
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert int(unit["Service"]["TimeoutStopSec"]) <= 10
    assert unit["Service"]["User"] != "root"


def test_there_is_a_unit_for_the_gateway_and_one_for_every_service():
    assert {u.name for u in UNITS} == {"overdracht-gateway.service", "overdracht-service@.service"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_accepts_the_units(tmp_path):
    for path in UNITS:
        text = path.read_text()
        for program in ("/opt/overdracht/.venv/bin/python", "/opt/overdracht/.venv/bin/gunicorn"):
            text = text.replace(program, "/usr/bin/true")  # verify checks the program exists
        name = path.name.replace("@.", "@clients.")
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
