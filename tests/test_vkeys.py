"""Keys as text (``<name>+<hex key ID>+<base64(algorithm ‖ key)>``): verifier keys of the log's signer and
witness keys are read by one parser. Any key round-trips; any other text is refused with the key's own
error type, never another exception; a key of the other kind, or with another name, is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from transforms.checkpoints import CheckpointError, Verifier
from transforms.witness import CosignerKey, WitnessError

names = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters="+"),
                min_size=1, max_size=30)
keys = st.binary(min_size=32, max_size=32)


@given(names, keys)
def test_every_key_round_trips(name, public):
    verifier, witness = Verifier(name, public), CosignerKey(name, public)
    assert Verifier.from_vkey(verifier.vkey) == verifier
    assert CosignerKey.from_vkey(witness.vkey) == witness
    assert Verifier.from_vkey(f"  {verifier.vkey}\n") == verifier


@given(names, keys)
def test_a_key_of_the_other_kind_is_refused(name, public):
    with pytest.raises(CheckpointError, match="not an Ed25519 verifier key"):
        Verifier.from_vkey(CosignerKey(name, public).vkey)
    with pytest.raises(WitnessError, match="not an Ed25519 cosignature/v1 key"):
        CosignerKey.from_vkey(Verifier(name, public).vkey)


@given(names, keys)
def test_another_name_is_refused(name, public):
    other = name + "x"
    vkey = Verifier(name, public).vkey.replace(name, other, 1)
    with pytest.raises(CheckpointError, match="verifier key ID does not match"):
        Verifier.from_vkey(vkey)
    wkey = CosignerKey(name, public).vkey.replace(name, other, 1)
    with pytest.raises(WitnessError, match="witness key ID does not match"):
        CosignerKey.from_vkey(wkey)


@given(st.text(max_size=120))
def test_any_text_is_a_key_or_the_keys_own_error(text):
    for parse, error in ((Verifier.from_vkey, CheckpointError), (CosignerKey.from_vkey, WitnessError)):
        try:
            parse(text)
        except error:
            pass


@pytest.mark.parametrize("text, message", [
    ("", "a verifier key is <name>"),
    ("name+abcd", "a verifier key is <name>"),
    ("name+zzzzzzzz+AAAA", "malformed verifier key"),
    ("name+00000000+not base64!", "malformed verifier key"),
    ("na me+00000000+AAAA", "invalid key name"),
    ("name+00000000+AAAA", "not an Ed25519 verifier key"),
])
def test_refusals_say_why(text, message):
    with pytest.raises(CheckpointError, match=message):
        Verifier.from_vkey(text)
