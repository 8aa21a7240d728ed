"""coldsign's BBQr codec (coldsign.qr.bbqr) against Coinkite's BBQr repository.

The real Coldcard scan must decode, and re-encoding its text must give back the very parts
the Coldcard showed. The spec's size table, its largest-file figures and the reference
tests' split outcomes (version-27 edge, minimum split) are checked on the encoder. Data
comes from tests/vectors/bbqr (sources in its README); random inputs use fixed seeds.
"""

import hashlib
import json
import random
from pathlib import Path

import pytest

from coldsign.errors import BadInput
from coldsign.qr import bbqr

HERE = Path(__file__).parent / "bbqr"
VECTORS = json.loads((HERE / "vectors.json").read_text())
SCAN = VECTORS["real_scan"]


def scan_lines() -> list[str]:
    return [line.strip() for line in (HERE / SCAN["file"]).read_text().splitlines()
            if line.strip()]


def test_real_scan_decodes():
    message = bbqr.decode(scan_lines())
    assert (message.file_type, message.encoding, message.parts) == (
        SCAN["file_type"], SCAN["encoding"], SCAN["parts"])
    assert len(message.data) == SCAN["decoded_bytes"]
    assert hashlib.sha256(message.data).hexdigest() == SCAN["decoded_sha256"]
    for text in SCAN["contains"]:
        assert text.encode() in message.data


def test_real_scan_reencodes_to_the_coldcards_parts():
    lines = scan_lines()
    distinct = sorted(set(lines), key=lambda p: p[6:8])
    data = bbqr.decode(lines).data
    split = bbqr.encode(data, SCAN["file_type"], **SCAN["reencode"])
    assert split.parts == tuple(distinct)
    assert (split.version, split.encoding) == (SCAN["reencode"]["max_version"], "Z")
    # Asking for Z explicitly changes nothing: compression helps this text.
    assert bbqr.encode(data, "U", encoding="Z", **SCAN["reencode"]).parts == split.parts


def test_real_scan_progress_counts_distinct_parts_and_frames():
    decoder = bbqr.BBQrDecoder()
    lines = scan_lines()
    new = [decoder.receive(line) for line in lines[:6]]
    assert new == [True] * 6                      # 01 03 04 05 06 07: 02 and 00 not yet seen
    assert decoder.progress == bbqr.Progress(parts_seen=6, parts_needed=8, frames_seen=6)
    assert decoder.missing == [0, 2] and not decoder.is_complete
    for line in lines[6:]:
        decoder.receive(line)
    assert decoder.is_complete
    assert decoder.progress == bbqr.Progress(8, 8, len(lines))


@pytest.mark.parametrize("row", VECTORS["size_estimates"], ids=lambda r: f"v{r['version']}")
def test_size_estimates_table(row):
    assert bbqr.alnum_capacity(row["version"]) == row["chars"]
    # A lone hex part fills the version exactly: the payload bytes fit, one more does not.
    payload = row["hex_payload_bytes"]
    version = row["version"]
    split = bbqr.encode(b"\x01" * payload, "B", encoding="H", min_version=version,
                        max_version=version)
    assert len(split.parts) == 1 and len(split.parts[0]) <= row["chars"]
    split = bbqr.encode(b"\x01" * (payload + 1), "B", encoding="H", min_version=version,
                        max_version=version)
    assert len(split.parts) == 2


@pytest.mark.parametrize("encoding", ["H", "2"])
def test_largest_file_fills_1295_version_40_parts(encoding):
    largest = VECTORS["largest_file"]
    data = random.Random(40).randbytes(largest[encoding])
    split = bbqr.encode(data, "T", encoding=encoding, min_version=largest["version"])
    assert split.version == largest["version"]
    assert len(split.parts) == largest["parts"]
    # 4,288 characters of room is a whole number of hex pairs and base32 groups: every part,
    # the last included, fills the QR code.
    assert {len(p) for p in split.parts} == {bbqr.alnum_capacity(40)}
    assert split.parts[-1].startswith(f"B${encoding}TZZZY")
    assert bbqr.decode(split.parts).data == data
    with pytest.raises(BadInput, match="do not fit in 1 to 1295 QR codes") as err:
        bbqr.encode(data + b"\x00", "T", encoding=encoding, min_version=40)
    assert err.value.code == "qr-too-large"


EDGE = VECTORS["edge_version_27"]


@pytest.mark.parametrize("size", range(EDGE["sizes"][0], EDGE["sizes"][1] + 1))
@pytest.mark.parametrize("encoding", ["H", "2", "Z"])
@pytest.mark.parametrize("low_entropy", [True, False])
def test_version_27_edge(size, encoding, low_entropy):
    data = b"A" * size if low_entropy else random.Random(size).randbytes(size)
    split = bbqr.encode(data, "T", encoding=encoding, max_split=EDGE["max_split"],
                        min_version=EDGE["version"], max_version=EDGE["version"])
    assert split.version == EDGE["version"]
    if encoding == "H":
        assert len(split.parts) == (1 if size <= EDGE["H_single_part_up_to"] else 2)
    else:
        assert len(split.parts) == EDGE[f"{encoding}_parts"]
    if encoding == "Z" and low_entropy:
        assert split.encoding == "Z"
        assert len(split.parts[0]) < EDGE["Z_low_entropy_part_chars_below"]
    if encoding == "Z" and not low_entropy:
        assert split.encoding == "2"              # random bytes do not compress: base32
    assert bbqr.decode(split.parts).data == data


MIN_SPLIT = VECTORS["min_split"]


@pytest.mark.parametrize("min_split", range(MIN_SPLIT["min_splits"][0],
                                            MIN_SPLIT["min_splits"][1] + 1))
def test_min_split(min_split):
    data = random.Random(min_split).randbytes(MIN_SPLIT["bytes"])
    split = bbqr.encode(data, MIN_SPLIT["file_type"], encoding=MIN_SPLIT["encoding"],
                        min_split=min_split)
    assert len(split.parts) >= min_split
    assert all(len(p) <= bbqr.alnum_capacity(split.version) for p in split.parts)
    message = bbqr.decode(split.parts)
    assert (message.file_type, message.data) == (MIN_SPLIT["file_type"], data)


def test_spec_example_headers_decode():
    example = VECTORS["example_headers"]
    data = random.Random(2150).randbytes(example["bytes"])
    hex_text = data.hex().upper()
    parts, offset = [], 0
    for header, digits in zip(example["parts"], example["hex_digits"]):
        parts.append(header + hex_text[offset:offset + digits])
        offset += digits
    assert [len(p) for p in parts] == [2008, 2008, 308]   # 8-character header + digits
    message = bbqr.decode(reversed(parts))
    assert (message.file_type, message.encoding, message.data) == ("P", "H", data)
