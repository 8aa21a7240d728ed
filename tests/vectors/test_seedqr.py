"""SeedQR vectors 1-9 from SeedSigner's SeedQR specification, both formats, both directions.

Each vector: mnemonic -> Standard digit stream and back; mnemonic -> CompactSeedQR bytes (which
must equal both the spec's bitstream and its printed bytestream) and back. Then damaged payloads:
bad index, bad checksum, wrong lengths, non-digits. Source: tests/vectors/seedqr/README.md.
"""

import ast
from pathlib import Path

import pytest

from coldsign.errors import BadInput, SecretProblem
from coldsign.keys import seedqr
from coldsign.keys.secret import Secret


def _load():
    text = (Path(__file__).parent / "seedqr" / "vectors.txt").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    blocks = [b.splitlines() for b in "\n".join(lines).strip().split("\n\n")]
    return [(m, d, bits, ast.literal_eval(raw)) for m, d, bits, raw in blocks]


VECTORS = _load()
IDS = [f"vector{n}" for n in range(1, len(VECTORS) + 1)]


def test_nine_vectors_with_consistent_bit_and_byte_streams():
    assert len(VECTORS) == 9
    for mnemonic, digits, bits, raw in VECTORS:
        assert len(bits) == len(raw) * 8
        assert int(bits, 2).to_bytes(len(raw), "big") == raw


@pytest.mark.parametrize("mnemonic,digits,bits,raw", VECTORS, ids=IDS)
def test_standard_both_ways(mnemonic, digits, bits, raw):
    encoded = seedqr.encode_standard(Secret(mnemonic))
    assert isinstance(encoded, Secret)
    assert encoded.reveal() == digits
    assert seedqr.decode_standard(Secret(digits)).reveal() == mnemonic
    assert seedqr.decode(Secret(digits)).reveal() == mnemonic
    assert seedqr.decode(Secret(digits.encode())).reveal() == mnemonic  # scanners hand over bytes


@pytest.mark.parametrize("mnemonic,digits,bits,raw", VECTORS, ids=IDS)
def test_compact_both_ways(mnemonic, digits, bits, raw):
    assert seedqr.encode_compact(Secret(mnemonic)).reveal() == raw
    assert seedqr.decode_compact(Secret(raw)).reveal() == mnemonic
    assert seedqr.decode(Secret(raw)).reveal() == mnemonic


def test_problem_bytes_survive_compact_decoding():
    # vector 2 holds a NUL byte, vector 9 holds \r\n: nothing after them may be lost
    assert b"\x00" in VECTORS[1][3] and b"\r\n" in VECTORS[8][3]
    for index in (1, 5, 6, 7, 8):
        mnemonic, _, _, raw = VECTORS[index]
        assert seedqr.decode(Secret(raw)).reveal() == mnemonic


def test_messy_mnemonic_text_encodes_the_same():
    mnemonic, digits, _, _ = VECTORS[3]
    assert seedqr.encode_standard(Secret("  " + mnemonic.upper().replace(" ", "  \t") + "\n")).reveal() == digits


STANDARD_12 = VECTORS[3][1]  # "forum undo ..." 48 digits


@pytest.mark.parametrize("payload,message", [
    ("2048" + STANDARD_12[4:], "SeedQR word 1 has an index above 2047"),
    (STANDARD_12[:20] + "9999" + STANDARD_12[24:], "SeedQR word 6 has an index above 2047"),
    (STANDARD_12[:-4] + "1117", "the SeedQR's BIP-39 checksum does not match"),
    (STANDARD_12[:-4], "a Standard SeedQR has 48 or 96 digits, this one has 44"),
    (STANDARD_12[:47] + "x", "a Standard SeedQR holds only digits"),
    ("", "a Standard SeedQR holds only digits"),
    ("١٢٣٤" * 12, "a Standard SeedQR holds only digits"),  # Arabic-Indic digits are not ASCII digits
], ids=["index-2048", "index-9999", "checksum", "short", "letter", "empty", "unicode-digits"])
def test_damaged_standard_payload(payload, message):
    with pytest.raises(BadInput) as caught:
        seedqr.decode_standard(Secret(payload))
    assert caught.value.message == message
    assert caught.value.code == "seedqr"


@pytest.mark.parametrize("payload,message", [
    (b"\x01" * 15, "a CompactSeedQR has 16 or 32 bytes, this one has 15"),
    (b"\x01" * 33, "a CompactSeedQR has 16 or 32 bytes, this one has 33"),
    ("not bytes", "a CompactSeedQR holds raw bytes"),
])
def test_damaged_compact_payload(payload, message):
    with pytest.raises(BadInput) as caught:
        seedqr.decode_compact(Secret(payload))
    assert caught.value.message == message


def test_decode_picks_standard_for_other_byte_lengths():
    with pytest.raises(BadInput) as caught:
        seedqr.decode(Secret(b"\xff" * 20))
    assert caught.value.message == "a Standard SeedQR holds only digits"


def test_encode_refuses_bad_or_unsupported_mnemonics():
    with pytest.raises(SecretProblem) as caught:
        seedqr.encode_standard(Secret(" ".join(VECTORS[3][0].split()[:-1] + ["abandon"])))
    assert "checksum does not match" in caught.value.message
    eighteen = "abandon " * 17 + "agent"  # a valid 18-word mnemonic (all-zero entropy)
    with pytest.raises(BadInput) as caught:
        seedqr.encode_compact(Secret(eighteen))
    assert caught.value.message == "SeedQR is defined for 12 and 24 words, this mnemonic has 18"
