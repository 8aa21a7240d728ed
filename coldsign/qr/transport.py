"""The pure layer between the QR codecs and the devices: what a sender shows, what a receiver
assembles (pure: strings in, strings and bytes out).

`encode()` turns a file into a `Transmission` (UR or BBQr payloads and the QR version they all
fit). An `Assembler` takes scanned payloads one at a time, in any order, with duplicates and
unrelated QR codes in view; it detects the format from the first payload that belongs to one,
refuses a second transmission mixed into the first, and says how far it got after each frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from coldsign.errors import UsageProblem
from coldsign.limits import LIMITS
from coldsign.qr import bbqr, textforms, ur
from coldsign.qr.errors import NotThisFormat, QRDecodeError

DENSITY_VERSIONS = {"low": 12, "medium": 20, "high": 30, "max": 40}
FORMATS = ("ur", "bbqr")
# UR type and BBQr file type of each kind of file coldsign sends.
UR_TYPES = {"psbt": "crypto-psbt", "bytes": "bytes", "transaction": "bytes",
            # account exports: the data is the type's CBOR item (coldsign.wallet.urtypes)
            **{name: name for name in ur.REGISTRY_TYPES}}
BBQR_TYPES = {"psbt": "P", "transaction": "T", "json": "J", "text": "U", "bytes": "B"}
_BBQR_KINDS = {"P": "psbt", "T": "transaction", "J": "json", "U": "text", "B": "bytes", "C": "bytes"}


@dataclass(frozen=True)
class Progress:
    format: str | None        # "ur" | "bbqr" | "specter" | "text" | None before the first frame of a message
    fraction: float           # 0.0 .. 1.0 (UR: rank / fragments; BBQr: parts / total)
    frames_seen: int          # payloads given to add(), unrelated ones included
    frames_useful: int        # payloads that moved the message forward
    complete: bool


@dataclass(frozen=True)
class Message:
    format: str               # "ur" | "bbqr" | "specter" | "base64" | "hex" | "base43"
    type: str                 # "psbt" | "transaction" | "bytes" | "json" | "text"
    data: bytes


class Assembler:
    """Scanned payloads in, one message out (see the module docstring)."""

    def __init__(self, *, max_bytes: int = LIMITS.qr_message_max_bytes,
                 max_frames: int = LIMITS.qr_max_frames,
                 ur_types: tuple[str, ...] = ur.SUPPORTED_TYPES) -> None:
        """`ur_types`: the UR types accepted; add ur.REGISTRY_TYPES to receive account exports
        (their Message.type is the UR type and .data its CBOR item)."""
        self.max_bytes, self.max_frames = max_bytes, max_frames
        self.ur_types = tuple(ur_types)
        self.format: str | None = None
        self._decoder = None
        self._message: Message | None = None
        self.frames_seen = 0
        self.frames_useful = 0

    def add(self, payload: str) -> Progress:
        """Take one scanned payload. Unrelated QR codes are counted and ignored; a payload of a
        second transmission raises QRDecodeError (nothing is combined)."""
        self.frames_seen += 1
        if self.frames_seen > self.max_frames:
            raise QRDecodeError(f"no complete message after {self.max_frames} frames",
                                hint="check that the other side shows one message, then scan again")
        if self._message is None:
            try:
                useful = self._add(payload)
            except NotThisFormat:
                useful = False
            self.frames_useful += bool(useful)
        return self.progress

    def _add(self, payload: str) -> bool:
        if self.format is None:
            return self._first(payload)
        useful = self._decoder.receive(payload)
        if self._decoder_complete():
            self._finish()
        return useful

    def _first(self, payload: str) -> bool:
        """The first payload that belongs to a format fixes the format."""
        text = payload.strip()
        if text[:3].lower() == "ur:":
            decoder, name = ur.URDecoder(self.ur_types), "ur"
        elif text.startswith(bbqr.PREFIX):
            decoder, name = bbqr.BBQrDecoder(self.max_bytes), "bbqr"
        elif text[:1] == "p" and " " in text[:12]:
            decoder, name = textforms.SpecterParts(), "specter"
        else:
            encoding, kind, data = textforms.single_frame(text)   # NotThisFormat when not one
            self._check_size(data)
            self.format, self._message = "text", Message(encoding, kind, data)
            return True
        useful = decoder.receive(payload)    # NotThisFormat leaves the format open
        self.format, self._decoder = name, decoder
        if self._decoder_complete():
            self._finish()
        return useful

    def _decoder_complete(self) -> bool:
        complete = self._decoder.complete if self.format == "specter" else self._decoder.is_complete
        return bool(complete)

    def _finish(self) -> None:
        d = self._decoder
        if self.format == "ur":
            data = d.message
            kind = "psbt" if d.ur_type in ur.PSBT_TYPES or data.startswith(textforms.PSBT_MAGIC) else "bytes"
            if d.ur_type in ur.REGISTRY_TYPES:
                kind = d.ur_type
        elif self.format == "bbqr":
            data, kind = d.message, _BBQR_KINDS[d.file_type]
        else:
            data, kind = d.message(), "psbt"
        self._check_size(data)
        if kind == "psbt" and not data.startswith(textforms.PSBT_MAGIC):
            # BBQr parts carry no checksum: parts of two messages with the same header end here.
            raise QRDecodeError(f"the {self.format} message claims to be a PSBT but is not one "
                                "(parts of two different messages?)", hint="scan again, one message at a time")
        self._message = Message(self.format, kind, data)

    def _check_size(self, data: bytes) -> None:
        if len(data) > self.max_bytes:
            raise QRDecodeError(f"the message is {len(data)} bytes, above the limit of {self.max_bytes}")

    @property
    def complete(self) -> bool:
        return self._message is not None

    def message(self) -> Message:
        if self._message is None:
            raise QRDecodeError(f"the message is not complete ({self.progress.fraction:.0%} after "
                                f"{self.frames_seen} frames)", hint="keep scanning until it completes")
        return self._message

    @property
    def progress(self) -> Progress:
        fraction = 1.0 if self._message is not None else 0.0
        if self._message is None and self._decoder is not None:
            if self.format == "specter":
                d = self._decoder
                fraction = len(d.chunks) / d.total if d.total else 0.0
            else:
                fraction = self._decoder.progress.fraction
        return Progress(self.format, fraction, self.frames_seen, self.frames_useful, self._message is not None)


@dataclass
class Transmission:
    """What a sender shows: `payloads` is one full cycle (UR: the k pure parts; BBQr: every part);
    `frames()` goes on forever (UR: then fountain parts; BBQr: cycles). Every payload fits a QR
    code of `qr_version` in alphanumeric mode at error correction L."""

    format: str
    type: str
    qr_version: int
    payloads: list[str]
    _encoder: object = None

    def frames(self) -> Iterator[str]:
        if self.format == "ur" and len(self.payloads) > 1:
            yield from self.payloads
            yield from self._encoder   # the encoder is past the pure parts: fountain parts from here
            return
        while True:
            yield from self.payloads


def _version_for(chars: int) -> int:
    for version in range(1, 41):
        if bbqr.alnum_capacity(version) >= chars:
            return version
    raise QRDecodeError(f"a payload of {chars} characters fits no QR code (at most {bbqr.MAX_PART_CHARS})")


def _ur_fragment_for(version: int, ur_type: str) -> int:
    """The largest fragment whose parts fit a version-`version` QR code: 2 characters a byte in
    minimal bytewords, plus the part's CBOR header and CRC and the `UR:TYPE/SEQ-LEN/` prefix
    (sequence numbers counted at 7 digits, so fountain parts far into a stream still fit)."""
    prefix = len(f"ur:{ur_type}/") + len("9999999-9999/")
    cbor_overhead = 1 + 5 + 3 + 5 + 5 + 3 + 4     # array, seq, len, message len, checksum, bytes head, CRC
    return (bbqr.alnum_capacity(version) - prefix) // 2 - cbor_overhead


def encode(data: bytes, *, format: str, type: str = "psbt", max_fragment: int | None = None,
           density: str | None = None) -> Transmission:
    """The frames that carry `data`: `max_fragment` (bytes of a UR fragment, characters of a BBQr
    part) or `density` (low|medium|high|max → QR version 12/20/30/40) sets the size; default medium."""
    if format not in FORMATS:
        raise UsageProblem(f"unknown QR format {format!r}", hint="use ur or bbqr")
    if max_fragment is not None and density is not None:
        raise UsageProblem("give --max-fragment or --density, not both")
    if density is not None and density not in DENSITY_VERSIONS:
        raise UsageProblem(f"unknown density {density!r}", hint="use low, medium, high or max")
    version = DENSITY_VERSIONS[density or "medium"]
    if format == "ur":
        ur_type = UR_TYPES.get(type)
        if ur_type is None:
            raise UsageProblem(f"UR carries psbt, transaction, bytes or {', '.join(ur.REGISTRY_TYPES)}, not {type}")
        fragment = max_fragment or _ur_fragment_for(version, ur_type)
        encoder = ur.UREncoder(data, ur_type, max_fragment_len=fragment)
        payloads = [encoder.next_part() for _ in range(encoder.seq_len)]
        longest = max(len(p) for p in payloads) + 8    # room for longer fountain sequence numbers
        return Transmission("ur", type, _version_for(longest), payloads, encoder)
    file_type = BBQR_TYPES.get(type)
    if file_type is None:
        raise UsageProblem(f"BBQr carries {', '.join(BBQR_TYPES)}, not {type}")
    if max_fragment is not None:
        version = _version_for(max_fragment + bbqr.HEADER_LEN)
    split = bbqr.encode(data, file_type, max_version=version)
    return Transmission("bbqr", type, split.version, list(split.parts))
