"""OVERDRACHT_SCALE: instances per component for make run and the fault suite."""

from __future__ import annotations

import pytest

from ops.platform import MAX_INSTANCES, instances, scale_of
from overdracht.bus import SERVICES


def test_nothing_named_runs_once():
    assert scale_of("") == dict.fromkeys((*SERVICES, "gateway"), 1)


def test_named_components_run_as_often_as_asked():
    counts = scale_of("gateway=2 documents=3,clients=2")
    assert (counts["gateway"], counts["documents"], counts["clients"]) == (2, 3, 2)
    assert counts["auth"] == counts["audit"] == counts["retention"] == 1


@pytest.mark.parametrize(
    "setting",
    ["gateway", "gateway=0", "gateway=two", "postgres=2", f"clients={MAX_INSTANCES + 1}", "=2"],
)
def test_a_bad_setting_is_refused_with_the_item_named(setting):
    with pytest.raises(ValueError, match="OVERDRACHT_SCALE") as refused:
        scale_of(setting)
    assert repr(setting.split()[0]) in str(refused.value)


def test_instances_keep_the_first_ones_name():
    assert instances("clients", 1) == ["clients"]
    assert instances("clients", 3) == ["clients", "clients-2", "clients-3"]
