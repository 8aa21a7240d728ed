"""coldsign.qr.transport and textforms: what a sender shows and what a receiver assembles.

Messages are random bytes behind the PSBT magic (so every form recognises them as a PSBT);
"losing" a frame means skipping it, as a camera that missed it would.
"""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import walletkit as W
from coldsign.qr import textforms
from coldsign.qr.errors import QRDecodeError
from coldsign.qr.transport import DENSITY_VERSIONS, Assembler, encode

UNRELATED = ["https://example.com/", "WIFI:S:office;T:WPA;P:secret;;", "bitcoin:bc1qexample?amount=1"]


def message(n: int, seed: int = 1) -> bytes:
    return b"psbt\xff" + random.Random(seed).randbytes(n)


def assemble(payloads) -> tuple[Assembler, int]:
    assembler, used = Assembler(), 0
    for payload in payloads:
        assembler.add(payload)
        used += 1
        if assembler.complete:
            break
    return assembler, used


@pytest.mark.parametrize("fmt", ["ur", "bbqr"])
@pytest.mark.parametrize("density", sorted(DENSITY_VERSIONS))
def test_every_density_round_trips_and_fits_its_version(fmt, density):
    from coldsign.qr.bbqr import alnum_capacity

    data = message(6000)
    sent = encode(data, format=fmt, density=density)
    assert sent.qr_version <= DENSITY_VERSIONS[density]
    assert max(len(p) for p in sent.payloads) <= alnum_capacity(sent.qr_version)
    assert all(p == p.upper() for p in sent.payloads)   # alphanumeric mode
    assembler, used = assemble(sent.payloads)
    assert assembler.message().data == data and assembler.message().type == "psbt"
    assert used == len(sent.payloads)


def test_ur_goes_on_with_fountain_parts_after_the_pure_ones():
    sent = encode(message(3000), format="ur", density="low")
    frames = sent.frames()
    first = [next(frames) for _ in range(len(sent.payloads) + 3)]
    assert first[:len(sent.payloads)] == sent.payloads
    k = len(sent.payloads)
    assert [p.split("/")[1] for p in first[k:]] == [f"{k + n}-{k}" for n in range(1, 4)]


def test_bbqr_cycles():
    sent = encode(message(3000), format="bbqr", density="low")
    frames = sent.frames()
    assert [next(frames) for _ in range(2 * len(sent.payloads))] == sent.payloads * 2


@settings(max_examples=30, deadline=None)
@given(fmt=st.sampled_from(["ur", "bbqr"]), size=st.integers(1, 4000), seed=st.integers(0, 2**32),
       data=st.data())
def test_any_order_and_duplication_decodes_the_same_bytes(fmt, size, seed, data):
    payload = message(size, seed)
    sent = encode(payload, format=fmt, density="low")
    frames = list(sent.payloads)
    frames += data.draw(st.lists(st.sampled_from(frames), max_size=10))     # duplicates
    frames += data.draw(st.lists(st.sampled_from(UNRELATED), max_size=3))   # other QR codes in view
    shuffled = data.draw(st.permutations(frames))
    assembler, _ = assemble(shuffled)
    assert assembler.message().data == payload


@pytest.mark.parametrize("fmt", ["ur", "bbqr"])
def test_a_second_transmission_is_refused_not_combined(fmt):
    # BBQr parts carry no checksum: a second message is told apart by its header (here: its total).
    one = encode(message(3000, 1), format=fmt, density="low").payloads
    two = encode(message(2000, 2), format=fmt, density="low").payloads
    assembler = Assembler()
    assembler.add(one[0])
    with pytest.raises(QRDecodeError):
        assembler.add(two[1])
    assert not assembler.complete


def test_unrelated_codes_are_counted_but_not_useful():
    sent = encode(message(500), format="ur", density="max")
    assembler = Assembler()
    for text in UNRELATED:
        progress = assembler.add(text)
    assert (progress.format, progress.frames_seen, progress.frames_useful) == (None, 3, 0)
    for payload in sent.payloads:
        progress = assembler.add(payload)
    assert progress.complete and progress.frames_useful == len(sent.payloads)


def test_progress_grows_to_one():
    sent = encode(message(4000), format="bbqr", density="low")
    assembler = Assembler()
    fractions = [assembler.add(p).fraction for p in sent.payloads]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] < 0.2


def test_limits():
    sent = encode(message(5000), format="bbqr", density="low")
    with pytest.raises(QRDecodeError, match="limit of 1000"):
        assemble_all(Assembler(max_bytes=1000), sent.payloads)
    with pytest.raises(QRDecodeError, match="no complete message after 3 frames"):
        assemble_all(Assembler(max_frames=3), UNRELATED * 2)


def assemble_all(assembler, payloads):
    for payload in payloads:
        assembler.add(payload)


def test_max_fragment_sets_the_part_size():
    data = message(2000)
    ur_parts = encode(data, format="ur", max_fragment=100).payloads
    assert len(ur_parts) == -(-(len(data) + 3) // 100)   # the CBOR byte string, in 100-byte fragments
    bbqr_parts = encode(data, format="bbqr", max_fragment=500).payloads
    assert max(len(p) for p in bbqr_parts) <= 500 + 8 + 100   # the version that holds 500 characters


# --- read-only forms ------------------------------------------------------------------------

def test_specter_parts_in_any_order():
    _, psbt = W.honest()
    raw = psbt.serialize()
    text = base64.b64encode(raw).decode()
    chunks = [text[i:i + 300] for i in range(0, len(text), 300)]
    parts = [f"p{i}of{len(chunks)} {c}" for i, c in enumerate(chunks, 1)]
    assembler, _ = assemble(list(reversed(parts)) + parts)
    assert assembler.message() .data == raw and assembler.message().format == "specter"


def test_specter_parts_of_two_messages_are_refused():
    assembler = Assembler()
    assembler.add("p1of3 cHNidP8BAA==")
    with pytest.raises(QRDecodeError, match="two messages"):
        assembler.add("p2of4 AAAA")


@pytest.mark.parametrize("encoding", ["base64", "hex", "base43"])
def test_single_frame_psbt_and_transaction(encoding):
    _, psbt = W.honest()
    raw = psbt.serialize()
    tx = psbt.unsigned_tx().serialize()
    for data, kind in ((raw, "psbt"), (tx, "transaction")):
        text = {"base64": base64.b64encode(data).decode(), "hex": data.hex(),
                "base43": textforms.base43_encode(data)}[encoding]
        assembler, used = assemble([text])
        got = assembler.message()
        assert (got.data, got.type, used) == (data, kind, 1)


def test_base43_keeps_leading_zero_bytes():
    data = b"\x00\x00\x01\x02"
    assert textforms.base43_encode(data).startswith("00")
    assert textforms.base43_decode(textforms.base43_encode(data)) == data
