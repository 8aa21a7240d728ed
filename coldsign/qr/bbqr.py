"""BBQr, Coinkite's "Better Bitcoin QR": a file split over QR codes in alphanumeric mode.

Every part is ``B$`` + encoding (``H`` hex, ``2`` base32, ``Z`` raw-deflate then base32) +
file type (``P`` PSBT, ``T`` transaction, ``J`` JSON, ``C`` CBOR, ``U`` text, ``B`` binary)
+ total parts (2 base-36 digits) + this part's index (2 base-36 digits) + its share of the
encoded text. All parts but the last carry the same number of characters, each part decodes
to whole bytes on its own, and parts may arrive in any order (spec: BBQr.md in
github.com/coinkite/BBQr).

The encoder follows the reference split rule: over QR versions ``min_version..max_version``
(error correction L), a part holds the version's alphanumeric capacity less the 8-character
header, rounded down to the encoding's unit (2 hex digits, 8 base32 characters); it picks the
fewest parts, then the lowest version. The decoder (:class:`BBQrDecoder`) takes parts in any
order, duplicates included, and refuses a mix of messages, malformed parts and a zlib stream
that inflates past a hard cap. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass
from typing import Iterable

from coldsign.errors import BadInput, UsageProblem
from coldsign.limits import LIMITS
from coldsign.qr.errors import NotThisFormat, QRDecodeError

PREFIX = "B$"
HEADER_LEN = 8
MAX_PARTS = 1295                # "ZZ" in base 36
ENCODINGS = {"H": "hex", "2": "base32", "Z": "zlib+base32"}
FILE_TYPES = {"P": "PSBT", "T": "transaction", "J": "JSON", "C": "CBOR", "U": "text",
              "B": "binary"}
# Characters of one part must be whole bytes: 2 hex digits, 8 base32 characters (40 bits).
SPLIT_UNIT = {"H": 2, "2": 8, "Z": 8}
ZLIB_WBITS = -10                # raw deflate, 1 KiB window: fixed by the spec
# NOTE: the spec asks for the maximum compression effort; CPython's levels 6-9 all reproduce
# the Coldcard's own Z parts in tests/vectors/bbqr.
ZLIB_LEVEL = 9
# NOTE: a Z message inflates at most ~1000x: 3.5 MB of parts could claim gigabytes. The
# decoder stops at this many output bytes (4 MB, far above any PSBT moved by QR).
MAX_DECODED_BYTES = LIMITS.qr_message_max_bytes

# Alphanumeric-mode capacity in characters of QR versions 1..40 at error correction level L
# (ISO/IEC 18004:2015, table 7). tests/unit/test_bbqr.py re-derives it from the number of
# data codewords of each version.
ALNUM_CAPACITY_L = (
    25, 47, 77, 114, 154, 195, 224, 279, 335, 395,
    468, 535, 619, 667, 758, 854, 938, 1046, 1153, 1249,
    1352, 1460, 1588, 1704, 1853, 1990, 2132, 2223, 2369, 2520,
    2677, 2840, 3009, 3183, 3351, 3537, 3729, 3927, 4087, 4296,
)
# No QR code holds more characters than version 40 in alphanumeric mode (byte mode: 2953).
MAX_PART_CHARS = ALNUM_CAPACITY_L[-1]

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NOT_HEX = re.compile(r"[^0-9A-F]")
_NOT_BASE32 = re.compile(r"[^A-Z2-7]")
# Base32 lengths (mod 8) that end on a whole byte: 0, 2, 4, 5, 7 characters.
_BASE32_WHOLE_BYTES = {0, 2, 4, 5, 7}


def alnum_capacity(version: int) -> int:
    """Characters a version-``version`` QR code holds in alphanumeric mode at level L."""
    if not 1 <= version <= 40:
        raise UsageProblem(f"QR version {version} does not exist (1 to 40)")
    return ALNUM_CAPACITY_L[version - 1]


def to_base36(n: int) -> str:
    """Two upper-case base-36 digits, 00..ZZ, as the header writes counts and indexes."""
    if not 0 <= n <= MAX_PARTS:
        raise UsageProblem(f"{n} does not fit in two base-36 digits (0 to {MAX_PARTS})")
    return _BASE36[n // 36] + _BASE36[n % 36]


def _from_base36(text: str, what: str, payload: str) -> int:
    if len(text) != 2 or any(c not in _BASE36 for c in text):
        raise QRDecodeError(f"{what} {text!r} is not two base-36 digits (0-9, A-Z)",
                            where=_where(payload))
    return _BASE36.index(text[0]) * 36 + _BASE36.index(text[1])


def _where(payload: str) -> str:
    return f"BBQr part {payload[:HEADER_LEN]!r}"


# --- encoding -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BBQrSplit:
    """A message ready to show: its parts (QR payloads, in order) and the QR version they fit."""

    version: int
    encoding: str
    file_type: str
    parts: tuple[str, ...]


def encode_text(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The encoded characters of ``data`` and the encoding used.

    ``H`` and ``2`` are taken as asked. ``Z`` or no choice tries raw deflate and keeps it
    only when the compressed bytes are fewer than the originals, else falls back to ``2``.
    """
    if encoding == "H":
        return "H", data.hex().upper()
    if encoding not in (None, "2", "Z"):
        raise UsageProblem(f"unknown BBQr encoding {encoding!r} (H, 2 or Z)")
    if encoding != "2":
        compressor = zlib.compressobj(ZLIB_LEVEL, zlib.DEFLATED, ZLIB_WBITS)
        packed = compressor.compress(data) + compressor.flush()
        if len(packed) < len(data):
            return "Z", _b32(packed)
    return "2", _b32(data)


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def choose_split(length: int, encoding: str, *, min_version: int = 5, max_version: int = 40,
                 min_split: int = 1, max_split: int = MAX_PARTS) -> tuple[int, int, int]:
    """(version, parts, characters per part) for ``length`` encoded characters.

    Fewest parts first, then the lowest version, as the reference does. A lone part holds
    the whole text; otherwise every part but the last holds exactly the per-part size.
    """
    min_version = min(min_version, max_version)
    if not 1 <= min_version <= max_version <= 40:
        raise UsageProblem(f"QR versions {min_version}..{max_version} out of range (1 to 40)")
    if not 1 <= min_split <= max_split <= MAX_PARTS:
        raise UsageProblem(f"part counts {min_split}..{max_split} out of range (1 to {MAX_PARTS})")
    unit = SPLIT_UNIT[encoding]
    options = []
    for version in range(min_version, max_version + 1):
        room = alnum_capacity(version) - HEADER_LEN
        per_part = room - room % unit
        count = -(-length // per_part)
        if min_split <= count <= max_split:
            options.append((count, version, length if count == 1 else per_part))
    if not options:
        raise BadInput(f"{length} encoded characters do not fit in {min_split} to {max_split} "
                       f"QR codes of versions {min_version} to {max_version}",
                       code="qr-too-large",
                       hint="allow more parts or higher QR versions, or send a smaller file")
    count, version, per_part = min(options)
    return version, count, per_part


def encode(data: bytes, file_type: str, *, encoding: str | None = None, min_version: int = 5,
           max_version: int = 40, min_split: int = 1, max_split: int = MAX_PARTS) -> BBQrSplit:
    """Split ``data`` into BBQr parts (see :func:`encode_text`, :func:`choose_split`)."""
    if file_type not in FILE_TYPES:
        raise UsageProblem(f"unknown BBQr file type {file_type!r} ({', '.join(FILE_TYPES)})")
    data = bytes(data)
    if not data:
        raise BadInput("nothing to encode: the file is empty", code="qr-too-large")
    used, text = encode_text(data, encoding)
    version, count, per_part = choose_split(len(text), used, min_version=min_version,
                                            max_version=max_version, min_split=min_split,
                                            max_split=max_split)
    head = PREFIX + used + file_type + to_base36(count)
    parts = tuple(head + to_base36(i) + text[i * per_part:(i + 1) * per_part]
                  for i in range(count))
    return BBQrSplit(version, used, file_type, parts)


# --- decoding -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BBQrPart:
    """One parsed part: header fields and its encoded characters (not yet decoded)."""

    encoding: str
    file_type: str
    total: int
    index: int
    body: str

    @property
    def header(self) -> str:
        return PREFIX + self.encoding + self.file_type + to_base36(self.total)


def parse_part(payload: str) -> BBQrPart:
    """Parse and check one QR payload.

    Raises NotThisFormat for text without the ``B$`` prefix (an unrelated QR code), and
    QRDecodeError for a malformed header or body.
    """
    if not isinstance(payload, str):
        raise NotThisFormat(f"not a BBQr part: a QR payload of type {type(payload).__name__}")
    payload = payload.strip()
    if not payload.startswith(PREFIX):
        raise NotThisFormat(f"not a BBQr part (no 'B$' prefix): {payload[:16]!r}")
    where = _where(payload)
    if len(payload) < HEADER_LEN:
        raise QRDecodeError(f"header truncated: {len(payload)} of {HEADER_LEN} characters",
                            where=where)
    if len(payload) > MAX_PART_CHARS:
        raise QRDecodeError(f"{len(payload)} characters: longer than any QR code holds "
                            f"({MAX_PART_CHARS})", where=where)
    encoding, file_type = payload[2], payload[3]
    if encoding not in ENCODINGS:
        raise QRDecodeError(f"unknown encoding {encoding!r} (H, 2 or Z)", where=where)
    if file_type not in FILE_TYPES:
        raise QRDecodeError(f"unknown file type {file_type!r} ({', '.join(FILE_TYPES)})",
                            where=where)
    total = _from_base36(payload[4:6], "part count", payload)
    index = _from_base36(payload[6:8], "part index", payload)
    if total == 0:
        raise QRDecodeError("part count is 0", where=where)
    if index >= total:
        raise QRDecodeError(f"part index {index} is not below the part count {total}",
                            where=where)
    body = payload[HEADER_LEN:]
    if not body:
        raise QRDecodeError(f"part {index} carries no data", where=where)
    bad = (_NOT_HEX if encoding == "H" else _NOT_BASE32).search(body)
    if bad:
        raise QRDecodeError(f"character {bad.group()!r} at offset {HEADER_LEN + bad.start()} "
                            f"is not {ENCODINGS['H' if encoding == 'H' else '2']}", where=where)
    if encoding == "H" and len(body) % 2:
        raise QRDecodeError(f"odd number of hex digits ({len(body)})", where=where)
    if encoding != "H" and len(body) % 8 not in _BASE32_WHOLE_BYTES:
        raise QRDecodeError(f"{len(body)} base32 characters do not end on a whole byte",
                            where=where)
    return BBQrPart(encoding, file_type, total, index, body)


def _decode_body(part: BBQrPart) -> bytes:
    if part.encoding == "H":
        return bytes.fromhex(part.body)
    try:
        return base64.b32decode(part.body + "=" * (-len(part.body) % 8))
    except binascii.Error as e:   # unreachable after parse_part's checks; kept as a guard
        raise QRDecodeError(f"part {part.index}: bad base32 ({e})") from e


# NOTE: BBQr carries no checksum: a frame of another transmission of the same file type and part
# count joins unnoticed; only the message's decoding (inflating, then parsing) can fail.
MIXED_FRAMES_HINT = ("the frames may mix two transmissions (BBQr carries no checksum): scan again with only "
                     "this one on the screen")


def inflate(packed: bytes, max_bytes: int = MAX_DECODED_BYTES) -> bytes:
    """Raw-deflate (wbits -10) decompression that stops past ``max_bytes`` of output."""
    inflater = zlib.decompressobj(ZLIB_WBITS)
    try:
        out = inflater.decompress(packed, max_bytes + 1)
    except zlib.error as e:
        raise QRDecodeError(f"Z data is not a valid deflate stream ({e})",
                            where="BBQr message", hint=MIXED_FRAMES_HINT) from e
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise QRDecodeError(f"Z data inflates past {max_bytes} bytes (the limit); refused",
                            where="BBQr message", hint="a zlib bomb or an oversized file")
    if not inflater.eof:
        raise QRDecodeError("Z data ends before its deflate stream does (truncated)",
                            where="BBQr message", hint=MIXED_FRAMES_HINT)
    if inflater.unused_data:
        raise QRDecodeError(f"{len(inflater.unused_data)} bytes after the end of the deflate "
                            "stream", where="BBQr message", hint=MIXED_FRAMES_HINT)
    return out


@dataclass(frozen=True)
class Progress:
    """How far a decoder is: distinct parts seen of those needed, and payloads received."""

    parts_seen: int
    parts_needed: int           # 0 until the first part says how many
    frames_seen: int

    @property
    def fraction(self) -> float:
        return self.parts_seen / self.parts_needed if self.parts_needed else 0.0


class BBQrDecoder:
    """Collects BBQr parts in any order, duplicates included, until the message is whole.

    ``receive`` returns True for a new part, False for a repeat, and raises NotThisFormat
    for an unrelated payload (skippable) or QRDecodeError for a malformed part, a part of
    another message, or a part contradicting an earlier one. A refused part leaves the
    decoder unchanged.
    """

    def __init__(self, max_bytes: int = MAX_DECODED_BYTES) -> None:
        self._max_bytes = max_bytes
        self._first: BBQrPart | None = None
        self._bodies: dict[int, str] = {}
        self._part_len: int | None = None      # characters of every part but the last
        self._frames = 0
        self._message: bytes | None = None

    def receive(self, payload: str) -> bool:
        part = parse_part(payload)
        if self._check_fits(part):
            self._frames += 1
            return False
        bodies = {**self._bodies, part.index: part.body}
        first = self._first or part
        message = self._assemble(first, bodies) if len(bodies) == part.total else None
        self._first, self._bodies, self._message = first, bodies, message
        if part.index != part.total - 1:
            self._part_len = len(part.body)
        self._frames += 1
        return True

    def _check_fits(self, part: BBQrPart) -> bool:
        """Refuse a part that contradicts those kept; True if it repeats one of them."""
        where = f"BBQr part {part.index} of {part.total}"
        first = self._first
        if first is not None and part.header != first.header:
            diff = [name for name, a, b in (("encoding", part.encoding, first.encoding),
                                            ("file type", part.file_type, first.file_type),
                                            ("part count", part.total, first.total)) if a != b]
            raise QRDecodeError(f"part of another message: header {part.header} after "
                                f"{first.header} (different {', '.join(diff)})", where=where,
                                hint="show one message at a time, or restart the scan")
        seen = self._bodies.get(part.index)
        if seen is not None:
            if seen != part.body:
                raise QRDecodeError("two different parts carry this index", where=where,
                                    hint="two messages are mixed; restart the scan")
            return True
        last = part.total - 1
        if part.index != last and self._part_len is not None \
                and len(part.body) != self._part_len:
            raise QRDecodeError(f"{len(part.body)} characters where the other parts have "
                                f"{self._part_len} (all parts but the last are equal)",
                                where=where)
        full = len(part.body) if part.index != last else self._part_len
        runt = len(part.body) if part.index == last else len(self._bodies.get(last, ""))
        if full is not None and runt > full:
            raise QRDecodeError(f"the last part has {runt} characters, more than the "
                                f"{full} of each other part", where=where)
        return False

    def _assemble(self, first: BBQrPart, bodies: dict[int, str]) -> bytes:
        ordered = [BBQrPart(first.encoding, first.file_type, first.total, i, bodies[i])
                   for i in range(first.total)]
        chars = sum(len(p.body) for p in ordered)
        decoded_len = chars // 2 if first.encoding == "H" else chars * 5 // 8
        if first.encoding != "Z" and decoded_len > self._max_bytes:
            raise QRDecodeError(f"the message decodes to {decoded_len} bytes, past the limit "
                                f"of {self._max_bytes}", where="BBQr message")
        raw = b"".join(_decode_body(p) for p in ordered)
        return inflate(raw, self._max_bytes) if first.encoding == "Z" else raw

    @property
    def is_complete(self) -> bool:
        return self._message is not None

    @property
    def message(self) -> bytes | None:
        """The decoded file once every part has arrived."""
        return self._message

    @property
    def file_type(self) -> str | None:
        return self._first.file_type if self._first else None

    @property
    def encoding(self) -> str | None:
        return self._first.encoding if self._first else None

    @property
    def missing(self) -> list[int]:
        total = self._first.total if self._first else 0
        return [i for i in range(total) if i not in self._bodies]

    @property
    def progress(self) -> Progress:
        return Progress(len(self._bodies), self._first.total if self._first else 0, self._frames)


@dataclass(frozen=True)
class BBQrMessage:
    """A decoded BBQr message: file type code, encoding it travelled in, and the bytes."""

    file_type: str
    encoding: str
    data: bytes
    parts: int


def decode(payloads: Iterable[str], *, max_bytes: int = MAX_DECODED_BYTES) -> BBQrMessage:
    """Decode a whole set of part payloads (any order, repeats allowed) into the file."""
    decoder = BBQrDecoder(max_bytes)
    for payload in payloads:
        decoder.receive(payload)
    if not decoder.progress.parts_needed:
        raise QRDecodeError("no BBQr parts given", where="BBQr message")
    if not decoder.is_complete:
        missing = decoder.missing
        shown = ", ".join(str(i) for i in missing[:20]) + (" …" if len(missing) > 20 else "")
        raise QRDecodeError(f"incomplete: {len(missing)} of {decoder.progress.parts_needed} "
                            f"parts missing (index {shown})", where="BBQr message",
                            hint="scan until every part has been seen")
    return BBQrMessage(decoder.file_type, decoder.encoding, decoder.message,
                       decoder.progress.parts_needed)
