"""BIP-39 English vectors (trezor/python-mnemonic, passphrase "TREZOR").

entropy -> mnemonic (embit.bip39), mnemonic -> seed -> root xprv through coldsign's
SeedKey.from_mnemonic (the path `--mnemonic-file` takes), and the master fingerprint.
Source: tests/vectors/bip39/README.md.
"""

import json
from pathlib import Path

import pytest
from embit import bip32, bip39

from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey

DATA = json.loads((Path(__file__).parent / "bip39" / "vectors.json").read_text())
VECTORS = DATA["english"]


def test_vector_count_and_passphrase():
    assert len(VECTORS) == 24
    assert DATA["passphrase"] == "TREZOR"


@pytest.mark.parametrize("entropy,mnemonic,seed,xprv", VECTORS, ids=[v[0][:12] + f"-{len(v[0])}" for v in VECTORS])
def test_english_vector(entropy, mnemonic, seed, xprv):
    assert bip39.mnemonic_from_bytes(bytes.fromhex(entropy)) == mnemonic
    assert bip39.mnemonic_to_bytes(mnemonic) == bytes.fromhex(entropy)
    assert bip39.mnemonic_to_seed(mnemonic, "TREZOR").hex() == seed
    key = SeedKey.from_mnemonic(Secret(mnemonic), Secret("TREZOR"))
    root = key.root.reveal()
    assert root.to_base58() == xprv
    assert key.fingerprint == bip32.HDKey.from_base58(xprv).my_fingerprint
    assert mnemonic not in repr(key) and xprv not in repr(key)


def test_mnemonic_file_spacing_and_case_give_the_same_seed():
    entropy, mnemonic, seed, xprv = VECTORS[12]
    messy = "  " + mnemonic.upper().replace(" ", "   ") + "\n"
    assert SeedKey.from_mnemonic(Secret(messy), Secret("TREZOR")).root.reveal().to_base58() == xprv
