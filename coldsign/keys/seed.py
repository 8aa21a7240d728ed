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
    from embit.wordlists.bip39 import WORDLIST

    parts = words.split()
    if len(parts) not in (12, 15, 18, 21, 24):
        raise SecretProblem(f"a BIP-39 mnemonic has 12, 15, 18, 21 or 24 words, this one has {len(parts)}",
                            where=where, hint="check the mnemonic file holds exactly the words")
    known = set(WORDLIST)
    for position, word in enumerate(parts, 1):
        if word not in known:
            raise SecretProblem(f"word {position} is not in the BIP-39 English word list",
                                where=where, hint="check the spelling of that word")
    if not bip39.mnemonic_is_valid(words):
        raise SecretProblem("the mnemonic's checksum does not match (a word is wrong or out of order)",
                            where=where, hint="compare every word with the backup")


@dataclass(repr=False)
class SeedKey:
    """The BIP-32 root of a seed. Its repr shows only the master fingerprint."""

    root: Secret  # embit HDKey (private)
    fingerprint: bytes = field(default=b"")
    seed: Secret | None = None  # the 64-byte BIP-39 seed (passphrase applied): SLIP-10 identity key

    @classmethod
    def from_mnemonic(cls, mnemonic: Secret, passphrase: Secret | None = None,
                      *, where: str | None = None) -> "SeedKey":
        from embit import bip32, bip39

        words = normalize_mnemonic(mnemonic.reveal())
        check_mnemonic(words, where=where)
        pw = passphrase.reveal() if passphrase is not None else ""
        seed = bip39.mnemonic_to_seed(words, pw)
        root = bip32.HDKey.from_seed(seed)
        return cls(root=Secret(root), fingerprint=root.child(0).fingerprint, seed=Secret(seed))

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    def __repr__(self) -> str:
        return f"SeedKey(fingerprint={self.fingerprint.hex()})"


def read_secret_file(path: Path | str, *, what: str) -> Secret:
    data = read_limited(path, LIMITS.mnemonic_file_max_bytes, what=what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretProblem(f"{what} is not UTF-8 text", where=str(path)) from None
    return Secret(text.rstrip("\r\n"))
