"""coldsign's BIP-143 digest (coldsign.psbt.sighash) against the BIP's own examples."""

import json
from pathlib import Path

import pytest
from embit.transaction import Transaction

from coldsign.psbt.sighash import SegwitV0Sighash

EXAMPLES = json.loads((Path(__file__).parent / "bip143" / "examples.json").read_text())


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["name"] for e in EXAMPLES])
def test_bip143_example(example):
    tx = Transaction.from_string(example["unsigned_tx"])
    digest = SegwitV0Sighash(tx).digest(example["input"], bytes.fromhex(example["script_code"]),
                                        example["amount_sat"], example["sighash_type"])
    assert digest.hex() == example["sighash"]


def test_only_sighash_all_is_computed():
    tx = Transaction.from_string(EXAMPLES[0]["unsigned_tx"])
    with pytest.raises(ValueError, match="only SIGHASH_ALL"):
        SegwitV0Sighash(tx).digest(1, b"", 1, 0x03)
