"""The BBQr codec (coldsign.qr.bbqr): split rule, decoder properties and hostile input.

Property tests (Hypothesis) encode random files and feed the parts back shuffled and
repeated, mixed with a part of another message, truncated or with a character changed:
the decoder returns the file or raises QRDecodeError, nothing else. Hostile cases are
built by hand, including a 1 GiB zlib bomb (a hand-written deflate block) that must be
refused within the decoder's 4 MB cap, quickly and in bounded memory.
"""

from __future__ import annotations

import base64
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldsign.errors import BadInput, ExitStatus, UsageProblem
from coldsign.qr import bbqr
from coldsign.qr.errors import NotThisFormat, QRDecodeError

# Data codewords of QR versions 1..40 at error correction L (ISO/IEC 18004, table 9): an
# independent source for the alphanumeric capacity table.
DATA_CODEWORDS_L = (
    19, 34, 55, 80, 108, 136, 156, 194, 232, 274, 324, 370, 428, 461, 523, 589, 647, 721,
    795, 861, 932, 1006, 1094, 1174, 1276, 1370, 1468, 1531, 1631, 1735, 1843, 1955, 2071,
    2191, 2306, 2434, 2566, 2702, 2812, 2956,
)

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=")


def decode_error(parts, **kw) -> QRDecodeError:
    with pytest.raises(QRDecodeError) as err:
        bbqr.decode(parts, **kw)
    assert err.value.exit_status == ExitStatus.BAD_INPUT
    return err.value


# --- tables and helpers -------------------------------------------------------------------

@pytest.mark.parametrize("version", range(1, 41))
def test_alnum_capacity_matches_the_data_codewords(version):
    # 4-bit mode indicator, a character count of 9/11/13 bits, then 11 bits per 2 characters
    # and 6 bits for an odd last one.
    count_bits = 9 if version < 10 else 11 if version < 27 else 13
    bits = DATA_CODEWORDS_L[version - 1] * 8 - 4 - count_bits
    expected = bits // 11 * 2 + (1 if bits % 11 >= 6 else 0)
    assert bbqr.alnum_capacity(version) == expected


def test_alnum_capacity_outside_1_to_40_is_a_usage_problem():
    for version in (0, 41):
        with pytest.raises(UsageProblem, match=f"QR version {version} does not exist"):
            bbqr.alnum_capacity(version)


def test_base36_round_trips_every_count():
    seen = {bbqr.to_base36(n) for n in range(1296)}
    assert len(seen) == 1296
    assert all(int(s, 36) == n for n, s in enumerate(sorted(seen, key=lambda s: int(s, 36))))
    assert (bbqr.to_base36(0), bbqr.to_base36(35), bbqr.to_base36(36)) == ("00", "0Z", "10")
    assert bbqr.to_base36(1295) == "ZZ"
    with pytest.raises(UsageProblem, match="1296 does not fit in two base-36 digits"):
        bbqr.to_base36(1296)


# --- encoder ------------------------------------------------------------------------------

def test_encoding_choice():
    text = b"PSBT " * 200
    assert bbqr.encode_text(text)[0] == "Z"
    assert bbqr.encode_text(text, "Z")[0] == "Z"
    assert bbqr.encode_text(text, "2") == ("2", b32(text))
    assert bbqr.encode_text(text, "H") == ("H", text.hex().upper())
    noise = bytes(range(256))                    # deflate cannot shrink this: base32
    assert bbqr.encode_text(noise, "Z") == ("2", b32(noise))
    with pytest.raises(UsageProblem, match="unknown BBQr encoding 'X'"):
        bbqr.encode_text(text, "X")


def test_split_prefers_fewest_parts_then_lowest_version():
    # 9,666 base32 characters: version 34 parts hold 3,168 (4 parts), version 35 3,336 (3).
    assert bbqr.choose_split(9666, "Z") == (35, 3, 3336)
    # One part: the lowest version whose aligned room holds the whole text. Version 5 has
    # 154 - 8 = 146 characters of room: 146 hex digits, but 144 base32 characters (the
    # reference counts parts with the aligned size even when one part would do).
    assert bbqr.choose_split(146, "H") == (5, 1, 146)
    assert bbqr.choose_split(148, "H") == (6, 1, 148)
    assert bbqr.choose_split(144, "2") == (5, 1, 144)
    assert bbqr.choose_split(145, "2") == (6, 1, 145)
    # Hex parts are cut at an even count: version 5's 146 of room stays 146, base32's 146
    # drops to 144.
    assert bbqr.choose_split(300, "H", max_version=5) == (5, 3, 146)
    assert bbqr.choose_split(300, "2", max_version=5) == (5, 3, 144)
    assert bbqr.choose_split(300, "2", min_version=1, max_version=1) == (1, 19, 16)


def test_split_options_out_of_range_are_usage_problems():
    with pytest.raises(UsageProblem, match=r"QR versions 0\.\.40 out of range"):
        bbqr.choose_split(10, "H", min_version=0)
    with pytest.raises(UsageProblem, match=r"part counts 1\.\.1296 out of range"):
        bbqr.choose_split(10, "H", max_split=1296)
    with pytest.raises(UsageProblem, match="unknown BBQr file type 'X'"):
        bbqr.encode(b"x", "X")


def test_too_large_or_empty_files_are_refused():
    with pytest.raises(BadInput, match="3000 encoded characters do not fit in 1 to 2 QR codes "
                                       "of versions 5 to 10") as err:
        bbqr.choose_split(3000, "H", max_version=10, max_split=2)
    assert err.value.code == "qr-too-large"
    with pytest.raises(BadInput, match="nothing to encode: the file is empty"):
        bbqr.encode(b"", "P")


def test_parts_are_equal_but_the_last_and_whole_bytes_each():
    data = bytes(range(256)) * 12
    for encoding, unit in (("H", 2), ("2", 8)):
        split = bbqr.encode(data, "B", encoding=encoding, max_version=11)
        bodies = [p[8:] for p in split.parts]
        assert len({len(b) for b in bodies[:-1]}) == 1
        assert len(bodies[-1]) <= len(bodies[0]) and len(bodies[0]) % unit == 0
        assert all(len(p) <= bbqr.alnum_capacity(split.version) for p in split.parts)
        assert [p[:8] for p in split.parts[:2]] == [f"B${encoding}B{bbqr.to_base36(len(bodies))}00",
                                                    f"B${encoding}B{bbqr.to_base36(len(bodies))}01"]


# --- property tests -----------------------------------------------------------------------

messages = st.fixed_dictionaries({
    "data": st.one_of(st.binary(min_size=1, max_size=1500),
                      st.binary(min_size=1, max_size=40).map(lambda b: b * 30)),
    "file_type": st.sampled_from(sorted(bbqr.FILE_TYPES)),
    "encoding": st.sampled_from([None, "H", "2", "Z"]),
    "max_version": st.integers(1, 12),
})


def split_of(message) -> bbqr.BBQrSplit:
    return bbqr.encode(message["data"], message["file_type"], encoding=message["encoding"],
                       min_version=1, max_version=message["max_version"])


@PROPERTY
@given(message=messages, draw=st.data())
def test_any_order_and_repetition_decodes_the_same(message, draw):
    parts = list(split_of(message).parts)
    extra = draw.draw(st.lists(st.sampled_from(parts), max_size=12))
    feed = draw.draw(st.permutations(parts + extra))
    decoded = bbqr.decode(feed)
    assert decoded.data == message["data"]
    assert decoded.file_type == message["file_type"]
    assert decoded.parts == len(parts)


@PROPERTY
@given(first=messages, second=messages, draw=st.data())
def test_a_part_of_another_message_is_refused(first, second, draw):
    ours = list(split_of(first).parts)
    theirs = draw.draw(st.sampled_from(split_of(second).parts))
    clash = next((p for p in ours if p[:8] == theirs[:8]), None)
    if theirs in ours:                            # the very same part: nothing to refuse
        assert bbqr.decode(ours + [theirs]).data == first["data"]
        return
    decoder = bbqr.BBQrDecoder()
    for part in ours:
        decoder.receive(part)
    before = decoder.progress
    with pytest.raises(QRDecodeError) as err:
        decoder.receive(theirs)
    if clash is None:
        assert "part of another message" in err.value.message
    else:
        assert err.value.message == "two different parts carry this index"
    assert decoder.progress == before and decoder.message == first["data"]


@PROPERTY
@given(message=messages, draw=st.data())
def test_damaged_parts_decode_or_raise_qr_decode_error_only(message, draw):
    parts = list(split_of(message).parts)
    index = draw.draw(st.integers(0, len(parts) - 1))
    part = parts[index]
    damage = draw.draw(st.sampled_from(["truncate", "replace", "drop"]))
    if damage == "truncate":
        parts[index] = part[:draw.draw(st.integers(0, len(part) - 1))]
    elif damage == "replace":
        at = draw.draw(st.integers(0, len(part) - 1))
        char = draw.draw(st.characters(codec="utf-8").filter(lambda c: c != part[at]))
        parts[index] = part[:at] + char + part[at + 1:]
    else:
        del parts[index]
    try:
        decoded = bbqr.decode(parts)
    except QRDecodeError as e:
        assert e.message and e.code in ("qr-decode", "qr-unrelated")
    else:
        # Only a change inside the data, or of the file-type letter into another valid one, can go
        # unnoticed (BBQr has no checksum; QR codes do).
        assert damage in ("truncate", "replace")
        assert isinstance(decoded.data, bytes)
        assert decoded.file_type == message["file_type"] or (damage == "replace" and at == 3)


# --- decoder: hostile and malformed input -------------------------------------------------

@pytest.mark.parametrize("payload, message", [
    ("B$2P0000AAAAAAAA", "part count is 0"),
    ("B$2P0303AAAAAAAA", "part index 3 is not below the part count 3"),
    ("B$2P03ZZAAAAAAAA", "part index 1295 is not below the part count 3"),
    ("B$2Pzz00AAAAAAAA", "part count 'zz' is not two base-36 digits (0-9, A-Z)"),
    ("B$2P+100AAAAAAAA", "part count '+1' is not two base-36 digits (0-9, A-Z)"),
    ("B$2P01 0AAAAAAAA", "part index ' 0' is not two base-36 digits (0-9, A-Z)"),
    ("B$XP0100AAAAAAAA", "unknown encoding 'X' (H, 2 or Z)"),
    ("B$hP0100AA", "unknown encoding 'h' (H, 2 or Z)"),
    ("B$2Q0100AAAAAAAA", "unknown file type 'Q' (P, T, J, C, U, B)"),
    ("B$2X0100AAAAAAAA", "unknown file type 'X' (P, T, J, C, U, B)"),
    ("B$2P01", "header truncated: 6 of 8 characters"),
    ("B$2P0100", "part 0 carries no data"),
    ("B$2P0100AAAA1AAA", "character '1' at offset 12 is not base32"),
    ("B$ZP0100AAAAAAA=", "character '=' at offset 15 is not base32"),
    ("B$2P0100aaaaaaaa", "character 'a' at offset 8 is not base32"),
    ("B$2P0100AAA", "3 base32 characters do not end on a whole byte"),
    ("B$HP01000G", "character 'G' at offset 9 is not hex"),
    ("B$HP01000a", "character 'a' at offset 9 is not hex"),
    ("B$HP0100ABC", "odd number of hex digits (3)"),
    ("B$HP0100" + "00" * 2145, "4298 characters: longer than any QR code holds (4296)"),
])
def test_malformed_parts(payload, message):
    err = decode_error([payload])
    assert err.message == message
    assert err.code == "qr-decode" and err.where == f"BBQr part {payload[:8]!r}"


@pytest.mark.parametrize("payload", ["ur:crypto-psbt/hdcxjsgm", "bitcoin:bc1qxyz", "", "B",
                                     "b$2P0100AAAAAAAA", "$B2P0100"])
def test_unrelated_payloads_are_not_this_format(payload):
    with pytest.raises(NotThisFormat, match="not a BBQr part") as err:
        bbqr.BBQrDecoder().receive(payload)
    assert err.value.code == "qr-unrelated"


def test_whole_range_of_part_counts_is_accepted():
    payload = "B$HBZZZY" + "00"
    decoder = bbqr.BBQrDecoder()
    assert decoder.receive(payload) is True
    assert decoder.progress == bbqr.Progress(parts_seen=1, parts_needed=1295, frames_seen=1)


def test_conflicting_parts_are_refused_and_leave_the_decoder_unchanged():
    decoder = bbqr.BBQrDecoder()
    assert decoder.receive("B$HP0300AABB") is True
    assert decoder.receive("B$HP0300AABB") is False            # a repeat
    cases = [
        ("B$2P0301AAAA", "part of another message: header B$2P03 after B$HP03 "
                         "(different encoding)"),
        ("B$HT0401AABB", "part of another message: header B$HT04 after B$HP03 "
                         "(different file type, part count)"),
        ("B$HP0300AABC", "two different parts carry this index"),
        ("B$HP0301AA", "2 characters where the other parts have 4 (all parts but the last "
                       "are equal)"),
        ("B$HP0302AABBCC", "the last part has 6 characters, more than the 4 of each other "
                           "part"),
    ]
    for payload, message in cases:
        with pytest.raises(QRDecodeError) as err:
            decoder.receive(payload)
        assert err.value.message == message
    assert decoder.progress == bbqr.Progress(parts_seen=1, parts_needed=3, frames_seen=2)
    assert decoder.receive("B$HP0302CC") is True
    assert decoder.receive("B$HP0301DDEE") is True
    assert decoder.message == bytes.fromhex("AABBDDEECC")


def test_a_runt_seen_first_bounds_the_full_parts():
    decoder = bbqr.BBQrDecoder()
    decoder.receive("B$HP0302CCDDEE")
    with pytest.raises(QRDecodeError) as err:
        decoder.receive("B$HP0300AABB")
    assert err.value.message == "the last part has 6 characters, more than the 4 of each other part"
    assert err.value.where == "BBQr part 0 of 3"


def test_incomplete_and_empty_sets_are_refused():
    err = decode_error(["B$HP0501AA", "B$HP0503AA"])
    assert err.message == "incomplete: 3 of 5 parts missing (index 0, 2, 4)"
    assert err.hint == "scan until every part has been seen"
    assert decode_error([]).message == "no BBQr parts given"


def deflate_bomb(copies: int) -> bytes:
    """One dynamic-Huffman deflate block: a literal 0 then ``copies`` x (length 258, distance 1).

    Length code 285 and distance code 0 get 1-bit codes (both 0), so each 258 output bytes
    cost 2 zero bits: 1 GiB of zeros in about 1 MB, built without compressing anything.
    """
    acc, width = 0, 0

    def put(value: int, bits: int) -> None:          # header fields: least significant first
        nonlocal acc, width
        acc |= value << width
        width += bits

    def code(value: int, bits: int) -> None:         # Huffman codes: most significant first
        put(int(format(value, f"0{bits}b")[::-1], 2), bits)

    put(1, 1), put(2, 2)                              # final block, dynamic Huffman
    put(286 - 257, 5), put(1 - 1, 5), put(18 - 4, 4)  # HLIT, HDIST, HCLEN
    code_length_lengths = {18: 1, 1: 2, 2: 2}         # codes: 18 -> 0, 1 -> 10, 2 -> 11
    for symbol in (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1):
        put(code_length_lengths.get(symbol, 0), 3)
    cl = {18: (0, 1), 1: (0b10, 2), 2: (0b11, 2)}
    # literal/length lengths: 0 -> 2, 1..255 -> 0, 256 -> 2, 257..284 -> 0, 285 -> 1
    code(*cl[2])
    code(*cl[18]), put(138 - 11, 7), code(*cl[18]), put(117 - 11, 7)
    code(*cl[2])
    code(*cl[18]), put(28 - 11, 7)
    code(*cl[1])
    code(*cl[1])                                      # the one distance code: length 1
    code(0b10, 2)                                     # literal 0 (codes: 285 -> 0, 0 -> 10,
    width += 2 * copies                               # 256 -> 11); the copies: zero bits
    code(0b11, 2)                                     # end of block
    return acc.to_bytes((width + 7) // 8, "little")


def z_parts(packed: bytes, file_type: str = "P") -> list[str]:
    text = b32(packed)
    _, count, per_part = bbqr.choose_split(len(text), "Z")
    head = f"B$Z{file_type}{bbqr.to_base36(count)}"
    return [head + bbqr.to_base36(i) + text[i * per_part:(i + 1) * per_part]
            for i in range(count)]


def test_deflate_bomb_builder_is_a_real_deflate_stream():
    small = deflate_bomb(1000)
    assert bbqr.inflate(small) == bytes(1 + 258 * 1000)
    assert bbqr.decode(z_parts(small)).data == bytes(258_001)


def test_zlib_bomb_of_one_gib_is_refused_quickly_in_bounded_memory():
    copies = (1 << 30) // 258 + 1                     # 1 + 258 * copies > 1 GiB of zeros
    parts = z_parts(deflate_bomb(copies))
    assert len(parts) > 1
    started = time.perf_counter()
    err = decode_error(parts)
    elapsed = time.perf_counter() - started
    assert err.message == (f"Z data inflates past {bbqr.MAX_DECODED_BYTES} bytes (the limit); "
                           "refused")
    assert elapsed < 1.5                              # measured: ~0.1 s
    tracemalloc.start()
    try:
        decode_error(parts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24_000_000              # measured: ~12 MB (parts, 1 MB packed, 4 MB out)


def test_decoded_size_limit_applies_to_every_encoding():
    data = bytes(range(256)) * 8                      # 2,048 bytes
    for encoding in ("H", "2"):
        parts = bbqr.encode(data, "B", encoding=encoding).parts
        assert bbqr.decode(parts, max_bytes=2048).data == data
        err = decode_error(parts, max_bytes=2047)
        assert err.message == "the message decodes to 2048 bytes, past the limit of 2047"
    parts = bbqr.encode(b"\0" * 5000, "B", encoding="Z").parts
    assert bbqr.decode(parts, max_bytes=5000).data == b"\0" * 5000
    assert decode_error(parts, max_bytes=4999).message == (
        "Z data inflates past 4999 bytes (the limit); refused")


def test_broken_deflate_streams_are_refused():
    packed = bbqr.encode(b"coldsign " * 300, "U", encoding="Z")
    raw = base64.b32decode(b"".join(p[8:].encode() for p in packed.parts)
                           + b"=" * (-sum(len(p) - 8 for p in packed.parts) % 8))
    assert decode_error(z_parts(raw[:-3], "U")).message == (
        "Z data ends before its deflate stream does (truncated)")
    assert decode_error(z_parts(raw + b"\x00\x01", "U")).message == (
        "2 bytes after the end of the deflate stream")
    err = decode_error(z_parts(b"\xff" * 40, "U"))
    assert err.message.startswith("Z data is not a valid deflate stream (")
    assert err.where == "BBQr message"
