"""BIP-39 seeds on the signer: read a mnemonic (and optional passphrase), derive the root key.

Secrets come from files (`--mnemonic-file`, `--passphrase-file`) or a no-echo prompt, never
from argv (`coldsign.cli.secrets` reads them). They are held in `Secret` wrappers and the root
key in a `SeedKey` whose repr shows only the public master fingerprint.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from coldsign.errors import SecretProblem
from coldsign.keys.secret import Secret
from coldsign.limits import LIMITS
from coldsign.store import read_limited


def normalize_mnemonic(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKD", text).lower().split())


def check_mnemonic(words: str, *, where: str | None = None) -> None:
    """Raise SecretProblem naming the first bad word, or a checksum failure. Never echoes the words."""
    from embit import bip39

    parts = words.split()
    if len(parts) not in (12, 15, 18, 21, 24):
        raise SecretProblem(f"a BIP-39 mnemonic has 12, 15, 18, 21 or 24 words, this one has {len(parts)}",
                            where=where, hint="check the mnemonic file holds exactly the words")
    known = _word_set()
    for position, word in enumerate(parts, 1):
        if word not in known:
            raise SecretProblem(f"word {position} is not in the BIP-39 English word list",
                                where=where, hint="check the spelling of that word")
    if not bip39.mnemonic_is_valid(words):
        raise SecretProblem("the mnemonic's checksum does not match (a word is wrong or out of order)",
                            where=where, hint="compare every word with the backup")


MIN_PREFIX = 4  # every BIP-39 English word is known by its first four letters


def complete_word(typed: str) -> str | None:
    """The BIP-39 word `typed` stands for: itself, or the one word it is a prefix of (at least
    MIN_PREFIX letters, as on metal backups that keep four letters a word); else None."""
    from embit.wordlists.bip39 import WORDLIST

    word = normalize_mnemonic(typed)
    if word in _word_set():
        return word
    if len(word) < MIN_PREFIX:
        return None
    matches = [w for w in WORDLIST if w.startswith(word)]
    return matches[0] if len(matches) == 1 else None


def suggest_words(typed: str, limit: int = 4) -> list[str]:
    """Up to `limit` BIP-39 words close to a mistyped one: same 4-letter start first, then by
    similarity. For the person typing, on their own screen only: never put these in an error."""
    import difflib

    from embit.wordlists.bip39 import WORDLIST

    word = normalize_mnemonic(typed)
    found = [w for w in WORDLIST if len(word) >= 3 and w.startswith(word[:MIN_PREFIX])][:limit]
    for close in difflib.get_close_matches(word, WORDLIST, n=limit, cutoff=0.6):
        if close not in found and len(found) < limit:
            found.append(close)
    return found


def _word_set() -> frozenset[str]:
    from embit.wordlists.bip39 import WORDLIST

    global _WORDS
    if _WORDS is None:
        _WORDS = frozenset(WORDLIST)
    return _WORDS


_WORDS: frozenset[str] | None = None


@dataclass(repr=False)
class SeedKey:
    """The BIP-32 root of a seed. Its repr shows only the master fingerprint."""

    root: Secret  # embit HDKey (private)
    fingerprint: bytes = field(default=b"")
    seed: Secret | None = None  # the 64-byte BIP-39 seed (passphrase applied): SLIP-10 identity key
    # with a BIP-39 passphrase: the master fingerprint of the same words without it, so custodians
    # recognise both the wallet they mean and the words they hold
    fingerprint_without_passphrase: bytes | None = None

    @classmethod
    def from_mnemonic(cls, mnemonic: Secret, passphrase: Secret | None = None,
                      *, where: str | None = None) -> "SeedKey":
        from embit import bip32, bip39

        words = normalize_mnemonic(mnemonic.reveal())
        check_mnemonic(words, where=where)
        # NOTE: BIP-39 salts with the passphrase in UTF-8 NFKD; embit does not normalize, and an
        # accented passphrase typed as NFC would give a seed no other BIP-39 wallet derives.
        pw = unicodedata.normalize("NFKD", passphrase.reveal()) if passphrase is not None else ""
        seed = bip39.mnemonic_to_seed(words, pw)
        root = bip32.HDKey.from_seed(seed)
        bare = None
        if pw:
            bare = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(words, "")).child(0).fingerprint
        return cls(root=Secret(root), fingerprint=root.child(0).fingerprint, seed=Secret(seed),
                   fingerprint_without_passphrase=bare)

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    def fingerprints(self) -> dict:
        """{"fingerprint"} and, with a passphrase, {"fingerprint_without_passphrase"}: for JSON and screens."""
        doc = {"fingerprint": self.fingerprint.hex()}
        if self.fingerprint_without_passphrase is not None:
            doc["fingerprint_without_passphrase"] = self.fingerprint_without_passphrase.hex()
        return doc

    def __repr__(self) -> str:
        return f"SeedKey(fingerprint={self.fingerprint.hex()})"


def read_secret_file(path: Path | str, *, what: str) -> Secret:
    data = read_limited(path, LIMITS.mnemonic_file_max_bytes, what=what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretProblem(f"{what} is not UTF-8 text", where=str(path)) from None
    return Secret(text.rstrip("\r\n"))
