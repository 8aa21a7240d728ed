"""Read-only QR text forms other wallets show (pure): Specter's `pMofN` parts, and single frames
holding a whole PSBT or transaction as base64, hex or Electrum's base43."""

from __future__ import annotations

import base64
import binascii
import re

from coldsign.qr.errors import NotThisFormat, QRDecodeError

PSBT_MAGIC = b"psbt\xff"
BASE43_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$*+-./:"
_SPECTER = re.compile(r"p([0-9]{1,4})of([0-9]{1,4}) (.*)", re.S)
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_BASE43 = re.compile(r"[0-9A-Z$*+\-./:]+")
MAX_SPECTER_PARTS = 1_000


def base43_decode(text: str) -> bytes:
    """Electrum's base43: big-endian digits; each leading '0' is a leading zero byte."""
    value = 0
    for char in text:
        value = value * 43 + BASE43_ALPHABET.index(char)
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return b"\x00" * (len(text) - len(text.lstrip("0"))) + body


def base43_encode(data: bytes) -> str:
    value = int.from_bytes(data, "big")
    digits = ""
    while value:
        value, digit = divmod(value, 43)
        digits = BASE43_ALPHABET[digit] + digits
    return "0" * (len(data) - len(data.lstrip(b"\x00"))) + digits


def kind_of(data: bytes) -> str | None:
    """"psbt", "transaction", or None when the bytes are neither."""
    if data.startswith(PSBT_MAGIC):
        return "psbt"
    from coldsign.psbt.fields import FieldProblem, parse_transaction

    try:
        parse_transaction(data, allow_witness=True, max_count=100_000)
    except FieldProblem:
        return None
    return "transaction"


def single_frame(payload: str) -> tuple[str, str, bytes]:
    """(encoding, kind, bytes) of a frame holding a whole PSBT or transaction; NotThisFormat otherwise."""
    text = payload.strip()
    candidates = []
    if _HEX.fullmatch(text) and len(text) % 2 == 0:
        candidates.append(("hex", lambda: bytes.fromhex(text)))
    if _BASE64.fullmatch(text):
        candidates.append(("base64", lambda: base64.b64decode(text, validate=True)))
    if _BASE43.fullmatch(text):
        candidates.append(("base43", lambda: base43_decode(text)))
    for encoding, decode in candidates:
        try:
            data = decode()
        except (binascii.Error, ValueError):
            continue
        kind = kind_of(data)
        if kind is not None:
            return encoding, kind, data
    raise NotThisFormat("not a PSBT or transaction in base64, hex or base43")


class SpecterParts:
    """Collects Specter's `pMofN <base64 chunk>` parts (any order, repeats) into the PSBT."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.chunks: dict[int, str] = {}

    def receive(self, payload: str) -> bool:
        match = _SPECTER.fullmatch(payload.strip())
        if not match:
            raise NotThisFormat("not a Specter pMofN part")
        index, total, chunk = int(match.group(1)), int(match.group(2)), match.group(3)
        if not 1 <= index <= total <= MAX_SPECTER_PARTS:
            raise QRDecodeError(f"Specter part p{index}of{total}: impossible numbers (1 ≤ M ≤ N ≤ "
                                f"{MAX_SPECTER_PARTS})")
        if self.total is not None and total != self.total:
            raise QRDecodeError(f"Specter part p{index}of{total} while collecting {self.total} parts: "
                                "two messages", hint="show one message at a time, or restart the scan")
        if index in self.chunks:
            if self.chunks[index] != chunk:
                raise QRDecodeError(f"Specter part p{index}of{total} differs from the one already seen: "
                                    "two messages")
            return False
        self.total = total
        self.chunks[index] = chunk
        return True

    @property
    def complete(self) -> bool:
        return self.total is not None and len(self.chunks) == self.total

    def message(self) -> bytes:
        text = "".join(self.chunks[i] for i in range(1, self.total + 1))
        try:
            data = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise QRDecodeError("the Specter parts joined are not valid base64") from None
        if not data.startswith(PSBT_MAGIC):
            raise QRDecodeError("the Specter parts joined are not a PSBT")
        return data
