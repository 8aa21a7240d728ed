"""SeedQR payloads (SeedSigner's format) for 12- and 24-word BIP-39 mnemonics; no image work here.

Standard SeedQR: the mnemonic's word indexes, each as 4 decimal digits (48 or 96 digits), meant to
be put in a numeric-mode QR code. CompactSeedQR: the mnemonic's entropy bits with the checksum
dropped (16 or 32 raw bytes), for a byte-mode QR code. Specification: SeedSigner's
docs/seed_qr/README.md. Payloads are as secret as the words, so everything goes in and out as
`Secret`; decoding checks every index and the BIP-39 checksum and never echoes the words.
"""

from __future__ import annotations

from coldsign.errors import BadInput
from coldsign.keys.secret import Secret
from coldsign.keys.seed import check_mnemonic, normalize_mnemonic

WORD_COUNTS = (12, 24)           # SeedSigner defines SeedQR for 12 and 24 words only
DIGITS_PER_WORD = 4
COMPACT_LENGTHS = (16, 32)       # bytes of entropy for 12 and 24 words
WORDLIST_SIZE = 2048
_DIGITS = frozenset("0123456789")


def _words(mnemonic: Secret) -> list[str]:
    words = normalize_mnemonic(mnemonic.reveal())
    check_mnemonic(words, where="mnemonic")
    parts = words.split()
    if len(parts) not in WORD_COUNTS:
        raise BadInput(f"SeedQR is defined for 12 and 24 words, this mnemonic has {len(parts)}")
    return parts


def encode_standard(mnemonic: Secret) -> Secret:
    """The Standard SeedQR digit string (Secret[str]) of a 12- or 24-word mnemonic."""
    from embit.wordlists.bip39 import WORDLIST

    index = {word: i for i, word in enumerate(WORDLIST)}
    return Secret("".join(f"{index[w]:04d}" for w in _words(mnemonic)))


def encode_compact(mnemonic: Secret) -> Secret:
    """The CompactSeedQR bytes (Secret[bytes]): the mnemonic's 128- or 256-bit entropy."""
    from embit import bip39

    return Secret(bip39.mnemonic_to_bytes(" ".join(_words(mnemonic))))


def decode_standard(digits: Secret) -> Secret:
    """The mnemonic (Secret[str]) of a Standard SeedQR digit string; checks indexes and checksum."""
    from embit.wordlists.bip39 import WORDLIST

    text = digits.reveal()
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            raise BadInput("a Standard SeedQR holds only digits", code="seedqr") from None
    text = text.strip()
    if not text or not set(text) <= _DIGITS:
        raise BadInput("a Standard SeedQR holds only digits", code="seedqr")
    if len(text) not in tuple(n * DIGITS_PER_WORD for n in WORD_COUNTS):
        raise BadInput(f"a Standard SeedQR has 48 or 96 digits, this one has {len(text)}", code="seedqr")
    words = []
    for number in range(len(text) // DIGITS_PER_WORD):
        value = int(text[number * DIGITS_PER_WORD:(number + 1) * DIGITS_PER_WORD])
        if value >= WORDLIST_SIZE:
            raise BadInput(f"SeedQR word {number + 1} has an index above {WORDLIST_SIZE - 1}",
                           code="seedqr", hint="the code is damaged or is not a SeedQR")
        words.append(WORDLIST[value])
    mnemonic = " ".join(words)
    _check_checksum(mnemonic)
    return Secret(mnemonic)


def decode_compact(data: Secret) -> Secret:
    """The mnemonic (Secret[str]) of CompactSeedQR bytes (16 or 32 bytes of entropy)."""
    from embit import bip39

    raw = data.reveal()
    if not isinstance(raw, (bytes, bytearray)):
        raise BadInput("a CompactSeedQR holds raw bytes", code="seedqr")
    if len(raw) not in COMPACT_LENGTHS:
        raise BadInput(f"a CompactSeedQR has 16 or 32 bytes, this one has {len(raw)}", code="seedqr")
    return Secret(bip39.mnemonic_from_bytes(bytes(raw)))


def decode(payload: Secret) -> Secret:
    """The mnemonic of either format: 48/96 ASCII digits are Standard, 16/32 bytes are Compact
    (the lengths never overlap, so raw bytes from a scanner are enough to tell them apart)."""
    value = payload.reveal()
    if isinstance(value, str):
        return decode_standard(payload)
    if isinstance(value, (bytes, bytearray)):
        if len(value) in COMPACT_LENGTHS:
            return decode_compact(payload)
        return decode_standard(payload)
    raise BadInput("a SeedQR payload is text or bytes", code="seedqr")


def _check_checksum(mnemonic: str) -> None:
    from embit import bip39

    if not bip39.mnemonic_is_valid(mnemonic):
        raise BadInput("the SeedQR's BIP-39 checksum does not match", code="seedqr",
                       hint="the code is damaged or is not a SeedQR")
