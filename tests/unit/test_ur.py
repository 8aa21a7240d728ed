"""The UR codec beyond the official vectors: properties and hostile input.

Properties (Hypothesis): any order and duplication of an encoder's parts decodes to the same
bytes; a part of another message is refused and changes nothing; the Gaussian decoder never
needs more frames than the peeling one on the same stream and completes exactly when the
received index sets reach full rank (checked against an independent GF(2) rank).
Hostile: truncated parts, bad checksums, seq_len 10,001, message length over 4 MiB,
non-minimal or indefinite CBOR, mismatched headers, contradicting and corrupted parts —
each asserting the error class and its message.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldsign.errors import BadInput
from coldsign.qr import bytewords
from coldsign.qr.errors import NotThisFormat, QRDecodeError
from coldsign.qr.fountain import (
    MAX_FRAGMENTS, MAX_MESSAGE_BYTES, FountainDecoder, FountainEncoder, FountainPart,
)
from coldsign.qr.fountain_compare import PeelingDecoder, simulate_join
from coldsign.qr.ur import (
    MAX_UR_CHARS, URDecoder, UREncoder, cbor_bytes, cbor_uint, decode_part, decode_single,
    encode_part, encode_part_string, encode_single, unwrap_message,
)

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _encoder_parts(message: bytes, max_fragment_len: int, count: int) -> list[str]:
    encoder = UREncoder(message, "crypto-psbt", max_fragment_len)
    return [encoder.next_part() for _ in range(count)]


def _ur_body(cbor: bytes, seq: str = "1-1", ur_type: str = "bytes") -> str:
    return f"ur:{ur_type}/{seq}/{bytewords.encode(cbor)}"


# --- properties ---------------------------------------------------------------------------

@PROPERTY
@given(message=st.binary(min_size=1, max_size=700),
       max_fragment_len=st.integers(10, 80),
       extra=st.integers(0, 15),
       data=st.data())
def test_any_order_and_duplication_decodes_the_same_bytes(message, max_fragment_len, extra, data):
    encoder = UREncoder(message, "crypto-psbt", max_fragment_len)
    parts = [encoder.next_part() for _ in range(encoder.seq_len + extra)]
    order = data.draw(st.permutations(parts))
    duplicates = data.draw(st.lists(st.sampled_from(parts), max_size=10))
    stream = list(order)
    for dup in duplicates:
        stream.insert(data.draw(st.integers(0, len(stream))), dup)
    decoder = URDecoder()
    for part in stream:
        decoder.receive(part)
        if decoder.is_complete:
            break
    assert decoder.is_complete
    assert decoder.message == message
    assert decoder.ur_type == "crypto-psbt"
    assert decoder.progress.rank == decoder.progress.seq_len


@PROPERTY
@given(first=st.binary(min_size=41, max_size=400), second=st.binary(min_size=41, max_size=400),
       position=st.integers(0, 100))
def test_a_part_of_another_message_is_refused_and_changes_nothing(first, second, position):
    if bytewords.crc32(cbor_bytes(first)) == bytewords.crc32(cbor_bytes(second)):
        second = bytes([first[0] ^ 1]) + first[1:]  # one flipped bit always changes a CRC
    parts = _encoder_parts(first, 20, 40)
    stranger = _encoder_parts(second, 20, 3)[position % 3]
    cut = position % len(parts)
    decoder = URDecoder()
    fed = 0
    for part in parts[:cut + 1]:
        decoder.receive(part)
        fed += 1
        if decoder.is_complete:
            break
    before = decoder.progress
    with pytest.raises(QRDecodeError) as caught:
        decoder.receive(stranger)
    assert caught.value.message.startswith("part of another message: ")
    assert caught.value.code == "qr-decode"
    assert decoder.progress == before
    for part in parts[fed:]:
        if decoder.is_complete:
            break
        decoder.receive(part)
    assert decoder.message == first


@PROPERTY
@given(fragments=st.integers(1, 60), loss=st.floats(0, 0.6), seed=st.integers(0, 2**32))
def test_gaussian_never_needs_more_frames_than_peeling(fragments, loss, seed):
    run = simulate_join(fragments, loss, seed)
    assert 1 <= run.gaussian_frames <= run.peeling_frames


def _independent_rank(masks: list[int]) -> int:
    """GF(2) rank by an xor basis keyed on the highest bit (the decoder keys on the lowest)."""
    basis: dict[int, int] = {}
    for mask in masks:
        while mask:
            top = mask.bit_length() - 1
            if top not in basis:
                basis[top] = mask
                break
            mask ^= basis[top]
    return len(basis)


@PROPERTY
@given(message=st.binary(min_size=30, max_size=600), max_fragment_len=st.integers(10, 40),
       seed=st.integers(0, 2**32))
def test_gaussian_completes_exactly_at_full_rank(message, max_fragment_len, seed):
    encoder = FountainEncoder(message, max_fragment_len)
    rng = random.Random(seed)
    seq_nums = rng.sample(range(1, 4 * encoder.seq_len + 20), 4 * encoder.seq_len + 10)
    decoder = FountainDecoder()
    masks: list[int] = []
    for seq_num in seq_nums:
        part = encoder.part(seq_num)
        masks.append(sum(1 << i for i in part.indexes))
        decoder.receive(part)
        rank = _independent_rank(masks)
        assert min(decoder.progress.rank, encoder.seq_len) == rank
        assert decoder.is_complete == (rank == encoder.seq_len)
        if decoder.is_complete:
            assert decoder.message == message
            return
    assert _independent_rank(masks) < encoder.seq_len


@PROPERTY
@given(data=st.binary(min_size=1, max_size=200), style=st.sampled_from(list(bytewords.Style)))
def test_bytewords_round_trip(data, style):
    text = bytewords.encode(data, style)
    assert bytewords.decode(text, style) == data
    assert bytewords.decode(text.upper(), style) == data


# --- encoder behaviour --------------------------------------------------------------------

def test_encoder_yields_pure_parts_first_then_fountain_parts_forever_in_upper_case():
    message = bytes(range(256)) * 2
    encoder = UREncoder(message, "crypto-psbt", 100)
    parts = [part for _, part in zip(range(encoder.seq_len + 30), encoder)]
    assert encoder.seq_len == 6
    headers = [p.split("/")[1] for p in parts]
    assert headers[:7] == ["1-6", "2-6", "3-6", "4-6", "5-6", "6-6", "7-6"]
    assert headers[-1] == "36-6"
    assert all(p == p.upper() and p.startswith("UR:CRYPTO-PSBT/") for p in parts)


def test_short_message_is_the_single_part_form_repeated():
    encoder = UREncoder(b"\x70\x73\x62\x74\xff", "psbt", 100)
    assert encoder.is_single_part
    assert encoder.next_part() == encoder.next_part() == encode_single(b"psbt\xff", "psbt")
    decoder = URDecoder()
    assert decoder.receive(encoder.next_part()) is True
    assert decoder.receive(encoder.next_part()) is False
    assert (decoder.message, decoder.ur_type) == (b"psbt\xff", "psbt")
    assert decoder.progress.fraction == 1.0


def test_progress_counts_seen_and_useful_parts():
    parts = _encoder_parts(bytes(300), 30, 12)
    decoder = URDecoder()
    decoder.receive(parts[0])
    decoder.receive(parts[0])
    decoder.receive(parts[1])
    progress = decoder.progress
    assert (progress.rank, progress.seq_len, progress.parts_seen, progress.parts_useful) == \
        (2, 11, 3, 2)
    assert progress.fraction == pytest.approx(2 / 11)


def test_parts_after_completion_are_accepted_but_add_nothing():
    parts = _encoder_parts(b"x" * 100, 30, 8)
    decoder = URDecoder()
    results = [decoder.receive(p) for p in parts]
    assert results[:4] == [True, True, True, True]
    assert results[4:] == [False] * 4
    assert decoder.message == b"x" * 100


def test_peeling_decoder_decodes_too():
    message = bytes(range(200))
    encoder = FountainEncoder(message, 20)
    decoder = PeelingDecoder()
    for seq_num in range(encoder.seq_len + 1, encoder.seq_len + 400):
        decoder.receive(encoder.part(seq_num))
        if decoder.is_complete:
            break
    assert decoder.message == message


def test_encoder_refuses_oversized_messages():
    with pytest.raises(BadInput) as caught:
        FountainEncoder(bytes(MAX_MESSAGE_BYTES + 1), 1000)
    assert caught.value.message == (f"message of {MAX_MESSAGE_BYTES + 1} bytes is above the "
                                    f"{MAX_MESSAGE_BYTES}-byte limit for QR transport")
    with pytest.raises(BadInput) as caught:
        FountainEncoder(bytes(MAX_FRAGMENTS * 10 + 10), 10)
    assert caught.value.message == f"message needs {MAX_FRAGMENTS + 1} fragments, above the limit of {MAX_FRAGMENTS}"


# --- hostile input ------------------------------------------------------------------------

REFERENCE_PART_1 = ("ur:bytes/1-9/lpadascfadaxcywenbpljkhdcahkadaemejtswhhylkepmykhhtsytsnoyoyaxae"
                    "dsuttydmmhhpktpmsrjtdkgslpgh")


def _raises(text: str, decoder: URDecoder | None = None) -> QRDecodeError:
    with pytest.raises(QRDecodeError) as caught:
        (decoder or URDecoder()).receive(text)
    return caught.value


def test_truncated_part_is_refused():
    error = _raises(REFERENCE_PART_1[:-2])
    assert type(error) is QRDecodeError
    assert error.where == "part 1-9"
    assert error.message.startswith("bytewords checksum mismatch: carried ")
    error = _raises(REFERENCE_PART_1[:-1])
    assert error.message == "minimal bytewords must have an even number of letters, got 91"


def test_bad_bytewords_checksum_is_refused():
    damaged = REFERENCE_PART_1.replace("/lpad", "/lpae", 1)  # 'ae' is a word: byte 0x00
    error = _raises(damaged)
    assert error.message == ("bytewords checksum mismatch: carried 244c8554, computed "
                             "cc5b15f5 over 42 byte(s)")


def test_not_a_byteword_names_its_position():
    error = _raises(REFERENCE_PART_1.replace("/lpad", "/lqad", 1))
    assert error.message == "'lq' at letter 0 (byte 0) is not a minimal byteword"


def test_seq_len_above_limit_is_refused_before_allocating():
    part = FountainPart(1, MAX_FRAGMENTS + 1, MAX_FRAGMENTS + 1, 0x12345678, b"\x00")
    error = _raises(encode_part_string(part, "bytes"))
    assert error.message == "sequence length 10001 is not in 1..10000"
    assert error.where == "part 1"


def test_message_length_above_limit_is_refused_before_allocating():
    part = FountainPart(1, 1, MAX_MESSAGE_BYTES + 1, 0x12345678, b"\x00")
    error = _raises(encode_part_string(part, "bytes"))
    assert error.message == "message length 4000001 is not in 1..4000000 bytes"


def test_fragment_length_inconsistent_with_lengths_is_refused():
    part = FountainPart(1, 9, 256, 0x12345678, b"\x00" * 5)
    error = _raises(encode_part_string(part, "bytes"))
    assert error.message == ("fragment of 5 byte(s) cannot split a 256-byte message into "
                             "9 fragments")


def test_sequence_number_zero_is_refused():
    part = FountainPart(0, 1, 3, 0, b"abc")
    error = _raises(encode_part_string(part, "bytes"))
    assert error.message == "sequence number 0 is not in 1..2^32-1"


def test_non_minimal_cbor_is_refused():
    cbor = bytes.fromhex("85" "1801" "09" "190100" "1a0167aa07" "43616263")
    error = _raises(_ur_body(cbor, "1-9"))
    assert error.message == "part 1-9: non-minimal CBOR encoding of 1 in seqNum at byte 1"
    cbor = bytes.fromhex("85" "01" "09" "1a00000100" "1a0167aa07" "43616263")
    error = _raises(_ur_body(cbor, "1-9"))
    assert error.message == "part 1-9: non-minimal CBOR encoding of 256 in messageLen at byte 3"


def test_indefinite_trailing_and_wrong_shape_cbor_is_refused():
    base = "85" "01" "01" "03" "00"
    error = _raises(_ur_body(bytes.fromhex(base + "5f4161ff")))
    assert error.message == ("part 1-1: unsupported CBOR length encoding 31 (indefinite or "
                             "reserved) at byte 5")
    error = _raises(_ur_body(bytes.fromhex(base + "43616263" "00")))
    assert error.message == "part 1-1: 1 trailing byte(s) at byte 9"
    error = _raises(_ur_body(bytes.fromhex("84" "01" "01" "03" "00")))
    assert error.message == "part 1-1: a fountain part is an array of 5 items"
    error = _raises(_ur_body(bytes.fromhex(base + "45616263")))
    assert error.message == "part 1-1: truncated: fragment data of 5 bytes, 3 left at byte 6"
    error = _raises(_ur_body(bytes.fromhex("85" "01" "01" "1b")))
    assert error.message == "part 1-1: truncated: messageLen head needs 8 more byte(s) at byte 3"


def test_header_disagreeing_with_the_part_is_refused():
    body = REFERENCE_PART_1.split("/")[2]
    error = _raises(f"ur:bytes/2-9/{body}")
    assert error.message == "header says 2-9 but the part carries 1-9"
    error = _raises(f"ur:bytes/1-x/{body}")
    assert error.message == "sequence component '1-x' is not 'N-M'"


def test_types_and_paths_are_checked():
    error = _raises("ur:crypto-account/aeadaolazmjendeoti")
    assert error.message == ("UR type 'crypto-account' is not supported (expected one of "
                             "crypto-psbt, psbt, bytes)")
    error = _raises("ur:by_tes/aeadaolazmjendeoti")
    assert error.message == "UR type 'by_tes' has characters other than a-z, 0-9 and '-'"
    error = _raises("ur:bytes")
    assert error.message == "a UR has 2 or 3 path components after 'ur:', found 1"
    error = _raises("ur:bytes/1-2/3/4")
    assert error.message == "a UR has 2 or 3 path components after 'ur:', found 4"
    error = _raises("UR:" + "A" * MAX_UR_CHARS)
    assert error.message == f"UR of {MAX_UR_CHARS + 3} characters is above the limit of {MAX_UR_CHARS}"


def test_unrelated_qr_text_is_a_distinct_error():
    for text in ("", "hello", "bitcoin:bc1q", "urn:isbn:0451450523", "BBQR"):
        with pytest.raises(NotThisFormat) as caught:
            URDecoder().receive(text)
        assert caught.value.message == "not a UR: the text does not start with 'ur:'"


def test_a_part_of_another_type_is_refused():
    parts = _encoder_parts(bytes(100), 30, 2)
    decoder = URDecoder()
    decoder.receive(parts[0])
    other = UREncoder(bytes(100), "psbt", 30).next_part()
    error = _raises(other.replace("UR:PSBT", "UR:PSBT"), decoder)
    assert error.message == "part of type ur:psbt while decoding ur:crypto-psbt"


def test_single_and_multi_part_urs_do_not_mix():
    decoder = URDecoder()
    decoder.receive(_encoder_parts(bytes(100), 30, 1)[0])
    error = _raises(encode_single(b"abc"), decoder)
    assert error.message == "a single-part UR while decoding a multi-part one: two messages"
    decoder = URDecoder()
    decoder.receive(encode_single(b"abc"))
    error = _raises(encode_single(b"abd"), decoder)
    assert error.message == "a second, different single-part UR: two messages"
    error = _raises(_encoder_parts(bytes(100), 30, 1)[0], decoder)
    assert error.message == "a multi-part UR after a single-part one: two messages"


def test_a_part_contradicting_earlier_parts_is_refused_and_changes_nothing():
    message = bytes(range(90))
    encoder = FountainEncoder(message, 30)          # 3 fragments
    decoder = FountainDecoder()
    decoder.receive(encoder.part(1))
    decoder.receive(encoder.part(2))
    forged = FountainPart(1, 3, 90, encoder.checksum, b"\x01" + encoder.part(1).data[1:])
    with pytest.raises(QRDecodeError) as caught:
        decoder.receive(forged)
    assert caught.value.message == ("part contradicts the parts received before it "
                                    "(corrupted or forged)")
    assert caught.value.where == "part 1"
    assert decoder.progress.parts_seen == 2
    decoder.receive(encoder.part(3))
    assert decoder.message == message


def test_a_corrupted_part_fails_the_message_checksum():
    message = bytes(range(90))
    encoder = FountainEncoder(message, 30)
    decoder = FountainDecoder()
    decoder.receive(encoder.part(1))
    decoder.receive(FountainPart(2, 3, 90, encoder.checksum, bytes(30)))
    with pytest.raises(QRDecodeError) as caught:
        decoder.receive(encoder.part(3))
    assert caught.value.message == (f"decoded message checksum "
                                    f"{bytewords.crc32(message[:30] + bytes(30) + message[60:]):08x}"
                                    f" does not match {encoder.checksum:08x}")
    with pytest.raises(QRDecodeError) as again:  # the failure sticks: restart the scan
        decoder.receive(encoder.part(4))
    assert again.value is caught.value
    assert not decoder.is_complete


def test_non_zero_padding_is_refused():
    message = b"A" * 25                              # 3 fragments of 10: 5 padding bytes
    checksum = bytewords.crc32(message)
    decoder = FountainDecoder()
    decoder.receive(FountainPart(1, 3, 25, checksum, message[:10]))
    decoder.receive(FountainPart(2, 3, 25, checksum, message[10:20]))
    with pytest.raises(QRDecodeError) as caught:
        decoder.receive(FountainPart(3, 3, 25, checksum, message[20:] + b"\x00\x00\x00\x00\x01"))
    assert caught.value.message == "padding after the message is not zero"


def test_message_must_be_one_cbor_byte_string():
    with pytest.raises(QRDecodeError) as caught:
        decode_single("ur:bytes/" + bytewords.encode(cbor_uint(5)))
    assert caught.value.message == ("ur:bytes message: expected message byte string, found "
                                    "CBOR major type 0 at byte 0")
    with pytest.raises(QRDecodeError) as caught:
        unwrap_message(cbor_bytes(b"ab") + b"\x00", "psbt")
    assert caught.value.message == "ur:psbt message: 1 trailing byte(s) at byte 3"


@pytest.mark.parametrize("value", [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32])
def test_cbor_uint_heads_are_minimal_and_round_trip(value):
    part = FountainPart(1, 1, 1, 0, b"\x00")
    cbor = encode_part(FountainPart(value, 1, 1, 0, b"\x00"))
    assert decode_part(cbor).seq_num == value
    assert len(cbor) - len(encode_part(part)) == {0: 0, 23: 0, 24: 1, 255: 1, 256: 2,
                                                  65535: 2, 65536: 4, 2**32 - 1: 4,
                                                  2**32: 8}[value]
