"""Auth's sealing keyset: unusable settings are refused without repeating them."""

from __future__ import annotations

import json
import uuid

import pytest
import tink
from tink import json_proto_keyset_format, secret_key_access
from tink import streaming_aead as tink_streaming

from services.auth.sealing import (
    CONFIRMED,
    SETTING,
    SealBroken,
    Sealer,
    SealingKeyError,
    new_keyset,
)

tink_streaming.register()


@pytest.mark.parametrize("keyset", ["", "not json at all: s3cr3t", '{"primaryKeyId": 1}'])
def test_an_unusable_keyset_is_refused_without_repeating_it(keyset):
    with pytest.raises(SealingKeyError) as refused:
        Sealer(keyset)
    assert SETTING in str(refused.value)
    assert "s3cr3t" not in str(refused.value)


def test_a_keyset_of_another_kind_is_refused():
    handle = tink.new_keyset_handle(tink_streaming.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
    with pytest.raises(SealingKeyError):
        Sealer(json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN))


def test_a_new_key_is_added_beside_the_old_ones_and_becomes_primary():
    old = new_keyset()
    rotated = json.loads(new_keyset(old))
    assert {k["keyId"] for k in json.loads(old)["key"]} < {k["keyId"] for k in rotated["key"]}
    assert rotated["primaryKeyId"] != json.loads(old)["primaryKeyId"]
    with pytest.raises(SealingKeyError):
        new_keyset("garbage")


def test_what_is_not_a_seal_neither_opens_nor_counts_as_current():
    sealer = Sealer(new_keyset())
    provider = uuid.uuid4()
    for garbage in ("", "JBSWY3DPEHPK3PXP", "!!!"):
        assert not sealer.is_current(garbage)
        with pytest.raises(SealBroken):
            sealer.open(garbage, provider, CONFIRMED)
    sealed = bytearray(sealer.seal("JBSWY3DPEHPK3PXP", provider, CONFIRMED).encode())
    sealed[-3] ^= 1  # one flipped bit of the tag
    with pytest.raises(SealBroken):
        sealer.open(sealed.decode(), provider, CONFIRMED)
