"""coldsign.keys.entropy: dice rolls parsed, checked and mixed with CSPRNG bytes into BIP-39 entropy.

The expected mix is recomputed here with hashlib from the formula in the module docstring, so a
change of encoding (domain tag, length prefixes, truncation) fails these tests.
"""

from __future__ import annotations

import hashlib
import math
import struct

import pytest
from embit import bip39

from coldsign.errors import BadInput
from coldsign.keys import entropy

# 60 rolls of a real die (typed from a session of rolls; every face present, no long run)
ROLLS = "351624462135526413365214425163315264143625512364421536631425"
CSPRNG = bytes(range(32))


def expected_mix(csprng: bytes, rolls: str, nbytes: int) -> bytes:
    dice = rolls.encode()
    return hashlib.sha256(b"coldsign/key-new/entropy/v1\x00" + struct.pack(">I", len(csprng)) + csprng
                          + struct.pack(">I", len(dice)) + dice).digest()[:nbytes]


def test_rolls_are_as_fixed():
    assert len(ROLLS) == 60 and set(ROLLS) == set("123456")
    entropy.check_rolls(ROLLS)


@pytest.mark.parametrize("nbytes", [16, 32])
def test_mix_is_the_documented_hash(nbytes):
    assert entropy.mix(CSPRNG, ROLLS, nbytes) == expected_mix(CSPRNG, ROLLS, nbytes)
    assert entropy.mix(CSPRNG, None, nbytes) == expected_mix(CSPRNG, "", nbytes)


def test_same_inputs_same_seed_and_either_change_changes_it():
    seed = entropy.mix(CSPRNG, ROLLS, 16)
    assert entropy.mix(bytes(range(32)), "".join(ROLLS), 16) == seed
    changed_roll = ROLLS[:-1] + ("1" if ROLLS[-1] != "1" else "2")
    assert entropy.mix(CSPRNG, changed_roll, 16) != seed
    assert entropy.mix(CSPRNG[:-1] + b"\xff", ROLLS, 16) != seed
    assert entropy.mix(CSPRNG, None, 16) != seed
    # a CSPRNG stuck at zeros still gives different seeds for different rolls (and vice versa)
    assert entropy.mix(bytes(32), ROLLS, 16) != entropy.mix(bytes(32), changed_roll, 16)


def test_length_prefixes_separate_csprng_from_rolls():
    # moving a byte across the boundary must change the result (no plain concatenation)
    assert entropy.mix(CSPRNG + b"1", "2", 16) != entropy.mix(CSPRNG, "12", 16)


def test_mnemonic_is_bip39_of_the_mixed_entropy():
    mixed = entropy.mix(CSPRNG, ROLLS, 32)
    words = entropy.mnemonic_of(mixed)
    assert words == bip39.mnemonic_from_bytes(mixed)
    assert len(words.split()) == 24
    assert bip39.mnemonic_to_bytes(words) == mixed
    assert len(entropy.mnemonic_of(entropy.mix(CSPRNG, ROLLS, 16)).split()) == 12


def test_mix_refuses_bad_sizes():
    with pytest.raises(BadInput, match="16 or 32 bytes, not 20"):
        entropy.mix(CSPRNG, ROLLS, 20)
    with pytest.raises(BadInput, match="8 CSPRNG bytes cannot make 16 bytes"):
        entropy.mix(bytes(8), ROLLS, 16)


def test_minimum_rolls_and_entropy_bits():
    assert entropy.minimum_rolls(12) == 50
    assert entropy.minimum_rolls(24) == 99
    assert entropy.minimum_rolls(12) * math.log2(6) >= 128
    assert entropy.minimum_rolls(24) * math.log2(6) > 255.9  # 99 rolls: the usual figure for 256 bits
    assert entropy.entropy_bits("123456") == pytest.approx(6 * 2.584962500721156)
    assert entropy.entropy_bits("") == 0
    with pytest.raises(BadInput, match="12 or 24 words, not 18"):
        entropy.minimum_rolls(18)
    assert entropy.entropy_bytes(12) == 16 and entropy.entropy_bytes(24) == 32


def test_parse_rolls_ignores_whitespace():
    assert entropy.parse_rolls(" 1 2\t3\n4\r\n56 ") == "123456"
    assert entropy.parse_rolls("") == ""


@pytest.mark.parametrize("text, message", [
    ("1234x6", "character 5 is 'x'"),
    ("12 0", "character 4 is '0'"),
    ("7", "character 1 is '7'"),
    ("12,3", "character 3 is ','"),
    ("1１", "character 2 is '１'"),
])
def test_parse_rolls_names_the_bad_position(text, message):
    with pytest.raises(BadInput) as info:
        entropy.parse_rolls(text)
    assert message in info.value.message
    assert info.value.code == "dice-rolls"


@pytest.mark.parametrize("rolls, message", [
    ("6" * 60, "all 60 dice rolls are 6"),
    ("123456" * 10, "repeat the cycle 123456"),
    ("12" * 30, "repeat the cycle 12"),
    ("654321" * 17, "repeat the cycle 654321"),
    ("35162446213552641336" + "4" * 8 + "5214425163315264143625", "rolls 21 to 28 are all 4 (8 in a row)"),
    (ROLLS.replace("6", "5"), "face 6 never comes up in 60 dice rolls"),
    ("1234" * 8, "repeat the cycle 1234"),
    # patterns with no short cycle and no long run: blocks, ramps, a 13-cycle (zlib finds them)
    (("111222333444555666" * 6)[:99], "the 99 dice rolls follow a pattern: they compress to 29 bytes"),
    ("".join(face * 7 for face in "123456") * 3, "the 126 dice rolls follow a pattern"),
    (("1234566543211" * 8)[:99], "the 99 dice rolls follow a pattern"),
    (("1234561234562" * 8)[:99], "fair rolls of that many never go below 32"),
])
def test_patterned_rolls_are_refused(rolls, message):
    with pytest.raises(BadInput) as info:
        entropy.check_rolls(rolls)
    assert message in info.value.message
    assert info.value.code == "dice-pattern"


def test_a_run_of_seven_and_a_missing_face_in_few_rolls_are_allowed():
    entropy.check_rolls("1234561111111" + "2345")  # run of 7; short
    entropy.check_rolls("12345123451234" + "5" * 3 + "3")  # 18 rolls without a 6: below 30


def test_fair_rolls_never_compress_below_the_pattern_floor():
    """The compression rule's floor, against fair rolls from a seeded generator: 5,000 of each length
    stay above it. (The run and missing-face rules refuse fair rolls now and then, e.g. 8 equal faces
    in a row about once in 3,000 sets of 99 rolls: rare, and a re-roll is safe.)"""
    import random
    import zlib

    rng = random.Random(20261129)
    for count in (50, 99, 150, 300):
        for _ in range(5_000):
            rolls = "".join(rng.choice(entropy.FACES) for _ in range(count))
            assert len(zlib.compress(rolls.encode(), 9)) >= entropy.fair_floor(count), rolls
