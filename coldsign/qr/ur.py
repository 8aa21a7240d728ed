"""Uniform Resources (BCR-2020-005): ``ur:TYPE/BYTEWORDS`` and ``ur:TYPE/SEQ-LEN/BYTEWORDS``.

coldsign moves PSBTs as URs of type ``crypto-psbt`` (and accepts ``psbt`` and ``bytes``),
whose message is one CBOR byte string. The registry types of account exports
(``crypto-output``, ``crypto-account``, ``crypto-hdkey``: :mod:`coldsign.wallet.urtypes`)
carry a CBOR item instead: the message *is* that item, passed through here as bytes and
checked by their own strict decoder. Decoders accept them only when asked (``types=``).
A multi-part UR carries one fountain part
(:mod:`coldsign.qr.fountain`) as the CBOR array ``[seqNum, seqLen, messageLen, checksum,
data]`` in minimal Bytewords. The encoder emits UPPER CASE, which QR alphanumeric mode
stores in 5.5 bits a character; the decoder accepts any case.

The CBOR needed is tiny (unsigned ints, byte strings, arrays) and written here with a
strict reader: shortest-form heads only, no indefinite lengths, no tags, no trailing bytes,
lengths checked against what is left before slicing. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Iterator

from coldsign.qr import bytewords
from coldsign.qr.errors import NotThisFormat, QRDecodeError
from coldsign.qr.fountain import (
    MAX_MESSAGE_BYTES, FountainDecoder, FountainEncoder, FountainPart, Progress,
)

SCHEME = "ur:"
PSBT_TYPES = ("crypto-psbt", "psbt")
SUPPORTED_TYPES = ("crypto-psbt", "psbt", "bytes")
# Types whose message is a CBOR item (a map or a tagged item), not a byte string.
REGISTRY_TYPES = ("crypto-output", "crypto-account", "crypto-hdkey")
DEFAULT_MAX_FRAGMENT_LEN = 200
# A single-part UR of the largest message, in minimal bytewords, plus the header: longer
# text is refused before it is lowered or split.
MAX_UR_CHARS = 2 * (MAX_MESSAGE_BYTES + 9 + bytewords.CHECKSUM_BYTES) + 64
_TYPE_RE = re.compile(r"[a-z0-9-]+")
_SEQ_RE = re.compile(r"([0-9]{1,10})-([0-9]{1,10})")

_MAJOR_UINT, _MAJOR_BYTES, _MAJOR_ARRAY = 0, 2, 4


# --- CBOR subset --------------------------------------------------------------------------

def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([(major << 5) | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([(major << 5) | info]) + value.to_bytes(size, "big")
    raise ValueError("CBOR head value above 2**64 - 1")


def cbor_uint(value: int) -> bytes:
    return _head(_MAJOR_UINT, value)


def cbor_bytes(data: bytes) -> bytes:
    return _head(_MAJOR_BYTES, len(data)) + bytes(data)


class CborReader:
    """Reads the CBOR subset strictly; every error names the byte offset."""

    def __init__(self, data: bytes, what: str):
        self._data = data
        self._pos = 0
        self._what = what

    def _fail(self, message: str, at: int | None = None) -> QRDecodeError:
        return QRDecodeError(f"{self._what}: {message} at byte {self._pos if at is None else at}")

    def _head(self, major: int, name: str) -> int:
        start = self._pos
        if start >= len(self._data):
            raise self._fail(f"truncated: expected {name}")
        initial = self._data[start]
        if initial >> 5 != major:
            raise self._fail(f"expected {name}, found CBOR major type {initial >> 5}")
        info = initial & 0x1F
        self._pos += 1
        if info < 24:
            return info
        if info > 27:
            raise self._fail(f"unsupported CBOR length encoding {info} (indefinite or reserved)",
                             start)
        size = 1 << (info - 24)
        if self._pos + size > len(self._data):
            raise self._fail(f"truncated: {name} head needs {size} more byte(s)", start)
        value = int.from_bytes(self._data[self._pos:self._pos + size], "big")
        self._pos += size
        minimum = 24 if size == 1 else 1 << (4 * size)
        if value < minimum:
            raise self._fail(f"non-minimal CBOR encoding of {value} in {name}", start)
        return value

    def uint(self, name: str = "unsigned integer") -> int:
        return self._head(_MAJOR_UINT, name)

    def byte_string(self, name: str = "byte string") -> bytes:
        length = self._head(_MAJOR_BYTES, name)
        if length > len(self._data) - self._pos:
            raise self._fail(f"truncated: {name} of {length} bytes, "
                             f"{len(self._data) - self._pos} left")
        value = self._data[self._pos:self._pos + length]
        self._pos += length
        return value

    def array(self, name: str = "array") -> int:
        return self._head(_MAJOR_ARRAY, name)

    def end(self) -> None:
        if self._pos != len(self._data):
            raise self._fail(f"{len(self._data) - self._pos} trailing byte(s)")


def encode_part(part: FountainPart) -> bytes:
    """A fountain part as the reference's CBOR array."""
    return (_head(_MAJOR_ARRAY, 5) + cbor_uint(part.seq_num) + cbor_uint(part.seq_len)
            + cbor_uint(part.message_len) + cbor_uint(part.checksum) + cbor_bytes(part.data))


def decode_part(cbor: bytes, where: str = "part") -> FountainPart:
    """Parse a fountain part's CBOR strictly (the fountain decoder checks its values)."""
    reader = CborReader(cbor, where)
    if reader.array("part array") != 5:
        raise QRDecodeError(f"{where}: a fountain part is an array of 5 items")
    part = FountainPart(reader.uint("seqNum"), reader.uint("seqLen"),
                        reader.uint("messageLen"), reader.uint("checksum"),
                        reader.byte_string("fragment data"))
    reader.end()
    return part


def unwrap_message(cbor: bytes, ur_type: str) -> bytes:
    """The payload of a ``crypto-psbt``/``psbt``/``bytes`` message: one CBOR byte string.
    A registry type's message is its CBOR item itself (returned unchanged)."""
    if ur_type in REGISTRY_TYPES:
        return bytes(cbor)
    reader = CborReader(cbor, f"ur:{ur_type} message")
    payload = reader.byte_string("message byte string")
    reader.end()
    return payload


# --- encoding -----------------------------------------------------------------------------

def _check_type(ur_type: str, types: tuple[str, ...] = SUPPORTED_TYPES) -> str:
    lowered = ur_type.lower()
    if lowered not in types:
        raise QRDecodeError(f"UR type {ur_type!r} is not supported "
                            f"(expected one of {', '.join(types)})")
    return lowered


def _message_cbor(message: bytes, ur_type: str) -> bytes:
    """What the UR carries: a byte string around the payload, or a registry type's CBOR item."""
    return bytes(message) if ur_type in REGISTRY_TYPES else cbor_bytes(message)


def encode_single(message: bytes, ur_type: str = "crypto-psbt") -> str:
    """The whole message as one UR string, upper case. For a registry type (REGISTRY_TYPES)
    `message` is the CBOR item, already encoded."""
    ur_type = _check_type(ur_type, SUPPORTED_TYPES + REGISTRY_TYPES)
    body = bytewords.encode(_message_cbor(message, ur_type), bytewords.Style.MINIMAL)
    return f"{SCHEME}{ur_type}/{body}".upper()


def encode_part_string(part: FountainPart, ur_type: str) -> str:
    body = bytewords.encode(encode_part(part), bytewords.Style.MINIMAL)
    return f"{SCHEME}{ur_type}/{part.seq_num}-{part.seq_len}/{body}".upper()


class UREncoder:
    """UR part strings for ``message`` forever: the ``seq_len`` pure parts, then fountain
    parts. A message that fits one fragment is the single-part form, repeated."""

    def __init__(self, message: bytes, ur_type: str = "crypto-psbt",
                 max_fragment_len: int = DEFAULT_MAX_FRAGMENT_LEN, first_seq_num: int = 0,
                 min_fragment_len: int = 10):
        self.ur_type = _check_type(ur_type, SUPPORTED_TYPES + REGISTRY_TYPES)
        self._message = bytes(message)
        self._fountain = FountainEncoder(_message_cbor(self._message, self.ur_type), max_fragment_len,
                                         first_seq_num, min_fragment_len)

    @property
    def seq_len(self) -> int:
        return self._fountain.seq_len

    @property
    def is_single_part(self) -> bool:
        return self._fountain.is_single_part

    def next_part(self) -> str:
        if self.is_single_part:
            return encode_single(self._message, self.ur_type)
        return encode_part_string(self._fountain.next_part(), self.ur_type)

    def __iter__(self) -> Iterator[str]:
        while True:
            yield self.next_part()


# --- decoding -----------------------------------------------------------------------------

def parse_ur(text: str, types: tuple[str, ...] = SUPPORTED_TYPES) -> tuple[str, list[str]]:
    """Split a UR string into its lower-case type and path components.

    Raises NotThisFormat when the text is not a UR at all (an unrelated QR code), and
    QRDecodeError when it is a UR but malformed or of a type not in `types`.
    """
    if not isinstance(text, str) or not text[:3].lower() == SCHEME:
        raise NotThisFormat("not a UR: the text does not start with 'ur:'")
    if len(text) > MAX_UR_CHARS:
        raise QRDecodeError(f"UR of {len(text)} characters is above the limit of {MAX_UR_CHARS}")
    components = text[3:].strip().lower().split("/")
    ur_type = components[0]
    if not _TYPE_RE.fullmatch(ur_type):
        raise QRDecodeError(f"UR type {ur_type!r} has characters other than a-z, 0-9 and '-'")
    _check_type(ur_type, types)
    if len(components) not in (2, 3):
        raise QRDecodeError(f"a UR has 2 or 3 path components after 'ur:', found {len(components)}")
    return ur_type, components[1:]


def decode_single(text: str, types: tuple[str, ...] = SUPPORTED_TYPES) -> tuple[str, bytes]:
    """Decode a single-part UR to (type, payload bytes); a registry type's payload is its CBOR."""
    ur_type, rest = parse_ur(text, types)
    if len(rest) != 1:
        raise QRDecodeError("this is one part of a multi-part UR; use URDecoder")
    return ur_type, unwrap_message(bytewords.decode(rest[0]), ur_type)


class URDecoder:
    """Collects UR part strings in any order, duplicates included, until the message is whole.

    ``receive`` returns True when the part added information, False for a duplicate or a
    redundant part, and raises: NotThisFormat for text that is not a UR (the caller may
    skip it), QRDecodeError for a malformed part, a part of another message or type, or a
    part contradicting earlier ones. A refused part leaves the decoder unchanged.
    `types` are the UR types accepted (add REGISTRY_TYPES to receive account exports).
    """

    def __init__(self, types: tuple[str, ...] = SUPPORTED_TYPES) -> None:
        self._types = tuple(types)
        self._fountain = FountainDecoder()
        self._type: str | None = None
        self._cbor: bytes | None = None
        self._message: bytes | None = None
        self._single_seen = 0

    def receive(self, text: str) -> bool:
        ur_type, rest = parse_ur(text, self._types)
        if self._type is not None and ur_type != self._type:
            raise QRDecodeError(f"part of type ur:{ur_type} while decoding ur:{self._type}",
                                hint="show one message at a time, or restart the scan")
        if len(rest) == 1:
            return self._receive_single(ur_type, rest[0])
        match = _SEQ_RE.fullmatch(rest[0])
        if not match:
            raise QRDecodeError(f"sequence component {rest[0][:24]!r} is not 'N-M'")
        seq_num, seq_len = int(match.group(1)), int(match.group(2))
        where = f"part {seq_num}-{seq_len}"
        part = decode_part(_bytewords(rest[1], where), where)
        if (part.seq_num, part.seq_len) != (seq_num, seq_len):
            raise QRDecodeError(f"header says {seq_num}-{seq_len} but the part carries "
                                f"{part.seq_num}-{part.seq_len}", where=where)
        if self._single_seen:
            raise QRDecodeError("a multi-part UR after a single-part one: two messages",
                                where=where)
        useful = self._fountain.receive(part)
        self._type = ur_type
        if self._fountain.is_complete and self._message is None:
            cbor = self._fountain.message
            self._message = unwrap_message(cbor, ur_type)
            self._cbor = cbor
        return useful

    def _receive_single(self, ur_type: str, body: str) -> bool:
        cbor = _bytewords(body, "single-part UR")
        if self._fountain.progress.parts_seen:
            raise QRDecodeError("a single-part UR while decoding a multi-part one: two messages")
        if self._cbor is not None:
            if cbor != self._cbor:
                raise QRDecodeError("a second, different single-part UR: two messages")
            self._single_seen += 1
            return False
        self._message = unwrap_message(cbor, ur_type)
        self._cbor, self._type = cbor, ur_type
        self._single_seen += 1
        return True

    @property
    def is_complete(self) -> bool:
        return self._message is not None

    @property
    def message(self) -> bytes | None:
        """The payload (e.g. the PSBT bytes) once complete."""
        return self._message

    @property
    def cbor(self) -> bytes | None:
        """The UR message as carried (the CBOR byte string) once complete."""
        return self._cbor

    @property
    def ur_type(self) -> str | None:
        return self._type

    @property
    def progress(self) -> Progress:
        if self._single_seen:
            return Progress(1, 1, self._single_seen, 1)
        return self._fountain.progress


def _bytewords(body: str, where: str) -> bytes:
    try:
        return bytewords.decode(body, bytewords.Style.MINIMAL)
    except QRDecodeError as e:
        raise QRDecodeError(e.message, where=where, hint=e.hint) from e
