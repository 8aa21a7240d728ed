"""BIP-380/381/382/383/386 vectors through coldsign's descriptor parser.

Valid vectors of supported kinds give the listed scripts through `parse_expression` +
`script_from_pubkeys` (the same script builder WalletDescriptor uses); valid vectors outside
coldsign's kinds are refused with an "unsupported" DescriptorError; invalid vectors raise
DescriptorError with the recorded message. Source: tests/vectors/descriptors/README.md.
"""

import json
from pathlib import Path

import pytest

from coldsign.errors import DescriptorError
from coldsign.wallet.keyexpr import parse_key_expression
from coldsign.wallet.scriptexpr import parse_expression, split_checksum

DATA = json.loads((Path(__file__).parent / "descriptors" / "bip380_386.json").read_text())
VALID = DATA["descriptors"]["valid"]
SUPPORTED = [v for v in VALID if "kind" in v]
REFUSED = [v for v in VALID if "coldsign_refuses" in v]


def _id(v):
    return f"bip{v.get('bip', 380)}-{v['text'][:28]}"


def test_coverage():
    assert len(VALID) == 26 and len(DATA["descriptors"]["invalid"]) == 24
    assert {v["kind"] for v in SUPPORTED} == {"wpkh", "sh-wpkh", "wsh-multi", "tr"}
    assert len(SUPPORTED) == 9


@pytest.mark.parametrize("text", [v["text"] for v in DATA["checksum"]["valid"]])
def test_checksum_valid(text):
    body, given = split_checksum(text)
    assert body == "raw(deadbeef)" and given in ("89f8spxm", None)


@pytest.mark.parametrize("case", DATA["checksum"]["invalid"], ids=lambda c: c["note"])
def test_checksum_invalid(case):
    with pytest.raises(DescriptorError) as info:
        split_checksum(case["text"])
    assert info.value.message == case["error"]


@pytest.mark.parametrize("text", DATA["key_expressions"]["valid"], ids=lambda t: t[:30])
def test_key_expression_valid(text):
    key = parse_key_expression(text, allow_private=True, allow_uncompressed=True)
    assert key.key is not None
    if text.startswith("["):
        assert key.origin.fingerprint == bytes.fromhex("deadbeef")


@pytest.mark.parametrize("case", DATA["key_expressions"]["invalid"], ids=lambda c: c["note"])
def test_key_expression_invalid(case):
    with pytest.raises(DescriptorError) as info:
        parse_key_expression(case["text"], allow_private=True, allow_uncompressed=True)
    assert info.value.message == case["error"]


@pytest.mark.parametrize("case", SUPPORTED, ids=_id)
def test_valid_supported_scripts(case):
    expression = parse_expression(case["text"], allow_private=True)
    assert expression.kind == case["kind"]
    got = [expression.scripts_at(i).script_pubkey.hex() for i in range(len(case["scripts"]))]
    assert got == case["scripts"]


@pytest.mark.parametrize("case", REFUSED, ids=_id)
def test_valid_but_unsupported(case):
    with pytest.raises(DescriptorError) as info:
        parse_expression(case["text"], allow_private=True)
    assert info.value.message == case["coldsign_refuses"]
    assert info.value.message.startswith("unsupported descriptor: ")


@pytest.mark.parametrize("case", DATA["descriptors"]["invalid"], ids=_id)
def test_invalid(case):
    with pytest.raises(DescriptorError) as info:
        parse_expression(case["text"], allow_private=True)
    assert info.value.message == case["error"]


def test_private_keys_refused_by_default():
    with pytest.raises(DescriptorError) as info:
        parse_expression(SUPPORTED[0]["text"])
    assert info.value.message == "wpkh() key: WIF private key in a wallet descriptor"
