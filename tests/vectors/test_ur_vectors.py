"""BC-UR official vectors: Bytewords, CRC32, Xoshiro256**, the alias sampler, shuffle, degree
and fragment choice, the fountain encoder's parts and the reference's UR strings.

Each vector is data from bc-ur's test.cpp or the BCR papers (see tests/vectors/ur/README.md)
and must match exactly; invalid ones assert the error class and message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coldsign.qr import bytewords
from coldsign.qr.bytewords import Style
from coldsign.qr.errors import NotThisFormat, QRDecodeError
from coldsign.qr.fountain import (
    FountainDecoder, FountainEncoder, RandomSampler, Xoshiro256, choose_degree,
    choose_fragments, find_nominal_fragment_length, join_fragments, partition_message,
    shuffled, xor_bytes,
)
from coldsign.qr.ur import (
    URDecoder, UREncoder, decode_part, decode_single, encode_part, encode_single,
)

HERE = Path(__file__).parent / "ur"
BYTEWORDS = json.loads((HERE / "bytewords.json").read_text())
FOUNTAIN = json.loads((HERE / "fountain.json").read_text())
UR = json.loads((HERE / "ur.json").read_text())


def make_message(length: int, seed: str = "Wolf") -> bytes:
    """bc-ur test-utils make_message: next_data of Xoshiro256 seeded with the text."""
    return Xoshiro256(seed.encode()).next_data(length)


# --- CRC32 and Bytewords -------------------------------------------------------------------

@pytest.mark.parametrize("case", BYTEWORDS["crc32"], ids=lambda c: c["input_ascii"])
def test_crc32(case):
    assert bytewords.crc32_bytes(case["input_ascii"].encode()).hex() == case["crc32_hex"]


def _vector_bytes(case) -> bytes:
    return bytes(case["bytes"]) if "bytes" in case else bytes.fromhex(case["hex"])


@pytest.mark.parametrize("case", BYTEWORDS["valid"], ids=lambda c: c["source"])
def test_bytewords_valid(case):
    data = _vector_bytes(case)
    if "crc32_hex" in case:
        assert bytewords.crc32_bytes(data).hex() == case["crc32_hex"]
    for style in Style:
        if style.value in case:
            text = case[style.value]
            assert bytewords.encode(data, style) == text
            assert bytewords.decode(text, style) == data
            assert bytewords.decode(text.upper(), style) == data


INVALID_MESSAGES = {
    "able acid also lava zero jade need echo wolf":
        "bytewords checksum mismatch: carried 6b9b33f3, computed 6cf6f7c9 over 5 byte(s)",
    "able-acid-also-lava-zero-jade-need-echo-wolf":
        "bytewords checksum mismatch: carried 6b9b33f3, computed 6cf6f7c9 over 5 byte(s)",
    "aeadaolazojendeowf":
        "bytewords checksum mismatch: carried 6b9b33f3, computed 6cf6f7c9 over 5 byte(s)",
    "wolf": "bytewords too short: 1 byte(s), need at least one byte and the 4-byte checksum",
    "": "bytewords too short: 0 byte(s), need at least one byte and the 4-byte checksum",
}


@pytest.mark.parametrize("case", BYTEWORDS["invalid"], ids=lambda c: c["text"] or "empty")
def test_bytewords_invalid(case):
    with pytest.raises(QRDecodeError) as caught:
        bytewords.decode(case["text"], Style(case["style"]))
    assert caught.value.message == INVALID_MESSAGES[case["text"]]
    assert caught.value.code == "qr-decode"


# --- Xoshiro256**, sampler, shuffle --------------------------------------------------------

def test_xoshiro_seeded_from_text():
    rng = Xoshiro256(b"Wolf")
    assert [rng.next() % 100 for _ in range(100)] == FOUNTAIN["xoshiro_next_mod_100_seed_text_Wolf"]


def test_xoshiro_seeded_from_crc32():
    rng = Xoshiro256.from_crc32(bytewords.crc32(b"Wolf"))
    assert [rng.next() % 100 for _ in range(100)] == \
        FOUNTAIN["xoshiro_next_mod_100_seed_crc32_of_Wolf"]


def test_xoshiro_next_int():
    rng = Xoshiro256(b"Wolf")
    assert [rng.next_int(1, 10) for _ in range(100)] == FOUNTAIN["xoshiro_next_int_1_10_seed_text_Wolf"]


def test_xor_of_random_data():
    case = FOUNTAIN["xor"]
    rng = Xoshiro256(case["seed_text"].encode())
    data1, data2 = rng.next_data(10), rng.next_data(10)
    assert (data1.hex(), data2.hex()) == (case["data1"], case["data2"])
    assert xor_bytes(data1, data2).hex() == case["xor"]
    assert xor_bytes(xor_bytes(data1, data2), data1) == data2


@pytest.mark.parametrize("case", FOUNTAIN["find_nominal_fragment_length"],
                         ids=lambda c: str(c["max_fragment_len"]))
def test_find_nominal_fragment_length(case):
    assert find_nominal_fragment_length(case["message_len"], case["min_fragment_len"],
                                        case["max_fragment_len"]) == case["fragment_len"]


def test_random_sampler():
    case = FOUNTAIN["random_sampler"]
    sampler = RandomSampler([float(p) for p in case["probabilities"]])
    rng = Xoshiro256(case["seed_text"].encode())
    assert [sampler.next(rng.next_double) for _ in range(500)] == case["samples"]


def test_shuffle():
    case = FOUNTAIN["shuffle"]
    rng = Xoshiro256(case["seed_text"].encode())
    assert [shuffled(case["values"], rng) for _ in range(10)] == case["results"]


# --- fragments, degrees, fragment choice ---------------------------------------------------

def test_partition_and_join():
    message = make_message(1024)
    fragment_len = find_nominal_fragment_length(len(message), 10, 100)
    fragments = partition_message(message, fragment_len)
    assert [f.hex() for f in fragments] == FOUNTAIN["message_1024"]["fragments"]
    assert join_fragments(fragments, len(message)) == message


def test_choose_degree():
    seq_len = len(FOUNTAIN["message_1024"]["fragments"])
    degrees = [choose_degree(seq_len, Xoshiro256(f"Wolf-{nonce}".encode()))
               for nonce in range(1, 201)]
    assert degrees == FOUNTAIN["message_1024"]["choose_degree_seed_text_Wolf-N_for_N_1_to_200"]


def test_choose_fragments():
    message = make_message(1024)
    seq_len = len(partition_message(message, find_nominal_fragment_length(1024, 10, 100)))
    checksum = bytewords.crc32(message)
    chosen = [sorted(choose_fragments(seq_num, seq_len, checksum)) for seq_num in range(1, 31)]
    assert chosen == FOUNTAIN["message_1024"]["choose_fragments_seq_1_to_30"]


# --- fountain encoder ----------------------------------------------------------------------

def test_fountain_encoder_parts():
    encoder = FountainEncoder(make_message(256), 30)
    parts = [encoder.next_part() for _ in range(20)]
    expected = FOUNTAIN["encoder_256_max_30"]
    assert [p.description() for p in parts] == expected["descriptions"]
    assert [encode_part(p).hex() for p in parts] == expected["cbor"]
    assert [decode_part(bytes.fromhex(c)) for c in expected["cbor"]] == parts


def test_fountain_encoder_seq_len_is_pure_part_count():
    encoder = FountainEncoder(make_message(256), 30)
    assert encoder.seq_len == 9
    assert [sorted(encoder.next_part().indexes) for _ in range(9)] == [[i] for i in range(9)]


def test_fountain_decoder_reference_message():
    message = make_message(32767)
    encoder = FountainEncoder(message, 1000, first_seq_num=100)
    decoder = FountainDecoder()
    while not decoder.is_complete:
        decoder.receive(encoder.next_part())
    assert decoder.message == message
    assert decoder.progress.rank == encoder.seq_len == 33


# --- UR strings ----------------------------------------------------------------------------

def test_single_part_ur():
    case = UR["single_part"]
    message = make_message(case["message_len"])
    encoded = encode_single(message, "bytes")
    assert encoded == case["ur"].upper()
    assert decode_single(case["ur"]) == ("bytes", message)
    assert decode_single(encoded) == ("bytes", message)


def test_ur_encoder_parts():
    case = UR["multi_part"]
    encoder = UREncoder(make_message(case["message_len"]), "bytes", case["max_fragment_len"])
    parts = [encoder.next_part() for _ in range(20)]
    assert all(p == p.upper() for p in parts)
    assert [p.lower() for p in parts] == case["parts"]


def test_reference_ur_parts_decode_in_any_case():
    case = UR["multi_part"]
    message = make_message(case["message_len"])
    for transform in (str.lower, str.upper):
        decoder = URDecoder()
        for part in reversed(case["parts"]):  # fountain parts first, then pure ones
            decoder.receive(transform(part))
            if decoder.is_complete:
                break
        assert decoder.message == message
        assert decoder.ur_type == "bytes"


def test_reference_ur_fountain_parts_then_one_pure_part():
    """Parts 10-20 (fountain parts, 3 of them redundant) give rank 8 of 9; the first pure
    part that raises the rank completes the message at once."""
    case = UR["multi_part"]
    decoder = URDecoder()
    useful = [decoder.receive(part) for part in case["parts"][9:]]
    assert useful == [True, True, True, True, False, True, True, True, False, True, False]
    assert (decoder.progress.rank, decoder.is_complete) == (8, False)
    for part in case["parts"][:9]:
        if decoder.receive(part):
            break
    assert decoder.is_complete
    assert decoder.message == make_message(case["message_len"])


def test_multipart_ur_reference_decode():
    case = UR["multi_part_decode"]
    message = make_message(case["message_len"])
    encoder = UREncoder(message, "bytes", case["max_fragment_len"], case["first_seq_num"])
    decoder = URDecoder()
    while not decoder.is_complete:
        decoder.receive(encoder.next_part())
    assert decoder.message == message


def test_unrelated_text_is_not_this_format():
    with pytest.raises(NotThisFormat) as caught:
        URDecoder().receive("bitcoin:bc1qexample")
    assert caught.value.code == "qr-unrelated"
    assert caught.value.message == "not a UR: the text does not start with 'ur:'"
