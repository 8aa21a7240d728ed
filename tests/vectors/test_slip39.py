"""SLIP-39 official vectors (trezor/python-shamir-mnemonic vectors.json, passphrase "TREZOR").

Every valid set combines, through coldsign.keys.shares.combine, to the listed master secret and
its BIP-39 mnemonic; every invalid set raises BadInput with the message below, which names the
share and the problem and never a word. Source: tests/vectors/slip39/README.md.
"""

import json
from pathlib import Path

import pytest
from embit import bip39

from coldsign.errors import BadInput
from coldsign.keys.secret import Secret
from coldsign.keys.shares import combine, inspect_share

VECTORS = json.loads((Path(__file__).parent / "slip39" / "vectors.json").read_text())
PASSPHRASE = Secret("TREZOR")

# 1-based vector number -> (SLIP-0039 description, expected message). The 256-bit half (20-38)
# repeats the 128-bit cases (1-19).
_INVALID_128 = {
    2: ("invalid checksum", "share 1: the checksum does not match (a word is wrong or out of order)"),
    3: ("invalid padding", "share 1: the padding bits are not zero, so this is not a valid share"),
    5: ("2-of-3, insufficient shares", "not enough shares: 1 given, 2 needed"),
    6: ("different identifiers", "share 2 is from a different share set than share 1 (identifiers differ)"),
    7: ("different iteration exponents",
        "share 2 is from a different share set than share 1 (iteration exponents differ)"),
    8: ("mismatching group thresholds", "share 3 disagrees with share 1 on the group threshold"),
    9: ("mismatching group counts", "share 2 disagrees with share 1 on the group count"),
    10: ("group threshold above group count", "share 1: its group threshold is greater than its group count"),
    11: ("duplicate member indices", "share 2 has the same group and member index as share 1"),
    12: ("mismatching member thresholds", "shares 1 and 2 are in group 1 but disagree on its member threshold"),
    13: ("invalid digest", "the shares of group 1 do not fit together (the SLIP-39 digest does not match)"),
    14: ("insufficient groups, case 1", "not enough groups: 1 complete, 2 needed"),
    15: ("insufficient groups, case 2", "not enough groups: 1 complete, 2 needed"),
    16: ("threshold groups but a group short of members",
         "not enough groups: 1 complete, 2 needed (group 4 has 1 of its 2 shares)"),
}
INVALID = {**_INVALID_128, **{n + 19: case for n, case in _INVALID_128.items()}}
INVALID[39] = ("insufficient length", "share 1 has 19 words; a SLIP-39 share has at least 20")
INVALID[40] = ("invalid master secret length", "share 1 has 21 words, which is not a valid SLIP-39 share length")

VALID = [(n, m, s) for n, (m, s) in enumerate(VECTORS, 1) if s]
INVALID_CASES = [(n, m) for n, (m, s) in enumerate(VECTORS, 1) if not s]


def test_vector_file_shape():
    assert len(VECTORS) == 40
    assert [n for n, _, _ in VALID] == [1, 4, 17, 18, 19, 20, 23, 36, 37, 38]
    assert sorted(INVALID) == [n for n, _ in INVALID_CASES]


@pytest.mark.parametrize("number,mnemonics,secret", VALID, ids=[f"vector{n}" for n, _, _ in VALID])
def test_valid_vector_combines_to_master_secret(number, mnemonics, secret):
    result = combine([Secret(m) for m in mnemonics], PASSPHRASE)
    assert result.master_secret.reveal().hex() == secret
    assert result.mnemonic.reveal() == bip39.mnemonic_from_bytes(bytes.fromhex(secret))
    assert bip39.mnemonic_is_valid(result.mnemonic.reveal())
    assert len(result.used) >= 1
    assert {u.position for u in result.used} | set(result.unused) == set(range(1, len(mnemonics) + 1))
    text = repr(result)
    for mnemonic in mnemonics:
        assert all(word not in text for word in mnemonic.split())
    assert secret not in text


@pytest.mark.parametrize("number,mnemonics", INVALID_CASES, ids=[f"vector{n}" for n, _ in INVALID_CASES])
def test_invalid_vector_is_refused_with_its_reason(number, mnemonics):
    description, message = INVALID[number]
    with pytest.raises(BadInput) as caught:
        combine([Secret(m) for m in mnemonics], PASSPHRASE)
    assert caught.value.message == message, description
    shown = str(caught.value)
    for mnemonic in mnemonics:
        assert all(word not in shown.split() for word in mnemonic.split())


def test_passphrase_is_part_of_the_secret():
    number, mnemonics, secret = VALID[1]  # vector 4: 2-of-3, 128 bits
    without = combine([Secret(m) for m in mnemonics])
    assert without.master_secret.reveal().hex() != secret
    assert combine([Secret(m) for m in mnemonics], PASSPHRASE).master_secret.reveal().hex() == secret


def test_vector_17_reports_groups_and_members():
    mnemonics = VECTORS[16][0]
    result = combine([Secret(m) for m in mnemonics], PASSPHRASE)
    assert result.group_threshold == 2 and result.group_count == 4
    assert result.groups_used == (3, 4)
    assert [u.position for u in result.used] == [1, 2, 3, 4, 5]
    info = inspect_share(Secret(mnemonics[1]))
    assert (info.group, info.group_threshold, info.group_count) == (3, 2, 4)
    assert (info.member_threshold, info.secret_bits, info.identifier) == (3, 128, result.identifier)
