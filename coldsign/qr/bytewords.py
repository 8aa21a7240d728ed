"""Bytewords (BCR-2020-012): bytes as 4-letter English words, with a CRC32 checksum.

Every encoding appends the CRC32 of the body (big-endian, 4 bytes) as the reference
implementation does, and every decoding checks it. Three styles:

- ``STANDARD``: words separated by spaces (``able acid also``);
- ``URI``: words separated by hyphens (``able-acid-also``);
- ``MINIMAL``: first and last letter of each word, no separator (``aeadao``) — the form
  inside a UR.

Decoding is case-insensitive (QR alphanumeric mode carries upper case) and, for the
four-letter styles, accepts either separator. Errors raise :class:`QRDecodeError` naming
the word or letter position that is wrong. Pure: no I/O.
"""

from __future__ import annotations

import zlib
from enum import Enum

from coldsign.qr.errors import QRDecodeError

# The word list of BCR-2020-012 (revised October 4, 2020), byte value = position.
WORDS: tuple[str, ...] = tuple("""
able acid also apex aqua arch atom aunt away axis back bald barn belt beta bias
blue body brag brew bulb buzz calm cash cats chef city claw code cola cook cost
crux curl cusp cyan dark data days deli dice diet door down draw drop drum dull
duty each easy echo edge epic even exam exit eyes fact fair fern figs film fish
fizz flap flew flux foxy free frog fuel fund gala game gear gems gift girl glow
good gray grim guru gush gyro half hang hard hawk heat help high hill holy hope
horn huts iced idea idle inch inky into iris iron item jade jazz join jolt jowl
judo jugs jump junk jury keep keno kept keys kick kiln king kite kiwi knob lamb
lava lazy leaf legs liar limp lion list logo loud love luau luck lung main many
math maze memo menu meow mild mint miss monk nail navy need news next noon note
numb obey oboe omit onyx open oval owls paid part peck play plus poem pool pose
puff puma purr quad quiz race ramp real redo rich road rock roof ruby ruin runs
rust safe saga scar sets silk skew slot soap solo song stub surf swan taco task
taxi tent tied time tiny toil tomb toys trip tuna twin ugly undo unit urge user
vast very veto vial vibe view visa void vows wall wand warm wasp wave waxy webs
what when whiz wolf work yank yawn yell yoga yurt zaps zero zest zinc zone zoom
""".split())

MINIMAL_WORDS: tuple[str, ...] = tuple(w[0] + w[3] for w in WORDS)
_WORD_VALUE = {w: i for i, w in enumerate(WORDS)}
_MINIMAL_VALUE = {m: i for i, m in enumerate(MINIMAL_WORDS)}

CHECKSUM_BYTES = 4


class Style(Enum):
    STANDARD = "standard"
    URI = "uri"
    MINIMAL = "minimal"


def crc32(data: bytes) -> int:
    """CRC-32 (ISO-HDLC, as zlib and the reference) of ``data`` as an unsigned int."""
    return zlib.crc32(data) & 0xFFFFFFFF


def crc32_bytes(data: bytes) -> bytes:
    """The CRC-32 of ``data`` in network order (big-endian), as Bytewords appends it."""
    return crc32(data).to_bytes(4, "big")


def encode(data: bytes, style: Style = Style.MINIMAL) -> str:
    """Encode ``data`` followed by its CRC32 as Bytewords in ``style`` (lower case)."""
    body = bytes(data) + crc32_bytes(data)
    if style is Style.MINIMAL:
        return "".join(MINIMAL_WORDS[b] for b in body)
    separator = " " if style is Style.STANDARD else "-"
    return separator.join(WORDS[b] for b in body)


def decode(text: str, style: Style = Style.MINIMAL) -> bytes:
    """Decode Bytewords in ``style``, check and strip the CRC32 and return the body.

    Raises QRDecodeError for an unknown word, an odd-length minimal string, fewer than
    5 bytes (one byte of body plus the checksum, as the reference requires) or a
    checksum mismatch.
    """
    lowered = text.lower()
    if style is Style.MINIMAL:
        raw = _decode_minimal(lowered)
    else:
        raw = _decode_words(lowered)
    if len(raw) < CHECKSUM_BYTES + 1:
        raise QRDecodeError(
            f"bytewords too short: {len(raw)} byte(s), need at least one byte and the "
            f"{CHECKSUM_BYTES}-byte checksum")
    body, carried = raw[:-CHECKSUM_BYTES], raw[-CHECKSUM_BYTES:]
    computed = crc32_bytes(body)
    if computed != carried:
        raise QRDecodeError(
            f"bytewords checksum mismatch: carried {carried.hex()}, computed "
            f"{computed.hex()} over {len(body)} byte(s)",
            hint="the text was damaged or truncated; scan or copy it again")
    return body


def _decode_minimal(text: str) -> bytes:
    if len(text) % 2:
        raise QRDecodeError(
            f"minimal bytewords must have an even number of letters, got {len(text)}")
    out = bytearray()
    lookup = _MINIMAL_VALUE
    for pos in range(0, len(text), 2):
        pair = text[pos:pos + 2]
        value = lookup.get(pair)
        if value is None:
            raise QRDecodeError(
                f"{pair!r} at letter {pos} (byte {pos // 2}) is not a minimal byteword")
        out.append(value)
    return bytes(out)


def _decode_words(text: str) -> bytes:
    if not text:
        return b""
    words = text.replace("-", " ").split(" ")
    out = bytearray()
    for index, word in enumerate(words):
        value = _WORD_VALUE.get(word)
        if value is None:
            raise QRDecodeError(f"{word!r} at word {index} is not a byteword")
        out.append(value)
    return bytes(out)
