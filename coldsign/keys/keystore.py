"""The encrypted keystore: a seed (and optional BIP-39 passphrase) at rest under a password.

One versioned JSON file per keystore, `<home>/keystores/<NAME>.json`, mode 0600:

    {"version": 1,
     "kdf": {"name": "argon2id", "opslimit": int, "memlimit": int, "salt": hex},
     "cipher": "xsalsa20poly1305", "nonce": hex, "ciphertext": hex,
     "fingerprint": hex,                      # master fingerprint, passphrase applied
     "fingerprint_without_passphrase": hex,   # only when a passphrase is stored
     "created": "YYYY-MM-DDTHH:MM:SSZ",
     "checksum": hex}                         # SHA-256 of the canonical JSON of every other field

The password goes through Argon2id (parameters stored in the file) to a 32-byte key for a
NaCl SecretBox (XSalsa20-Poly1305). The plaintext, `{"mnemonic", "passphrase"}`, exists only in
memory. Writes go through `coldsign.store.atomic_write`, so a crash leaves the old file or the new
one; a temp file left by a crash holds only the encrypted document.

The public `checksum` tells accidental damage (a flipped byte, a truncated copy) apart from a wrong
password: both make the MAC fail, but only damage breaks the checksum. It is not a security
measure (anyone can recompute it); the MAC is.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from coldsign.errors import BadInput, NotFound, Refused, SecretProblem
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey, normalize_mnemonic
from coldsign.limits import LIMITS

VERSION = 1
KDF_NAME = "argon2id"
CIPHER_NAME = "xsalsa20poly1305"
FOLDER = "keystores"
# NOTE: a keystore holds at most a 24-word mnemonic and a passphrase; 64 KiB bounds the one read.
KEYSTORE_MAX_BYTES = LIMITS.keystore_file_max_bytes
# Longest BIP-39 passphrase accepted, so a keystore always fits under KEYSTORE_MAX_BYTES.
PASSPHRASE_MAX_CHARS = 4_096
KEY_BYTES = 32
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# libsodium's argon2id constants (pynacl 1.5+), repeated here so importing this module stays light.
OPSLIMIT_INTERACTIVE, MEMLIMIT_INTERACTIVE = 2, 64 * 1024 * 1024
OPSLIMIT_MODERATE, MEMLIMIT_MODERATE = 3, 256 * 1024 * 1024
OPSLIMIT_SENSITIVE, MEMLIMIT_SENSITIVE = 4, 1024 * 1024 * 1024
# NOTE: creation refuses parameters weaker than INTERACTIVE; reading refuses anything above
# SENSITIVE so a damaged or hostile file cannot make us allocate unbounded memory.
DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT = OPSLIMIT_MODERATE, MEMLIMIT_MODERATE
SALT_BYTES, NONCE_BYTES, MAC_BYTES = 16, 24, 16
_FIELDS = {"version", "kdf", "cipher", "nonce", "ciphertext", "fingerprint", "created", "checksum"}
_OPTIONAL_FIELDS = {"fingerprint_without_passphrase"}
_KDF_FIELDS = {"name", "opslimit", "memlimit", "salt"}
_HEX = re.compile(r"(?:[0-9a-f]{2})*")


@dataclass(frozen=True)
class KeystoreInfo:
    """The public part of a keystore: what `key list | show` may print without a password."""

    name: str
    path: Path
    fingerprint: str
    fingerprint_without_passphrase: str | None
    created: str
    opslimit: int
    memlimit: int
    version: int = VERSION
    kdf: str = KDF_NAME
    cipher: str = CIPHER_NAME

    @property
    def has_passphrase(self) -> bool:
        return self.fingerprint_without_passphrase is not None

    def to_json(self) -> dict:
        return {"name": self.name, "path": str(self.path), "fingerprint": self.fingerprint,
                "fingerprint_without_passphrase": self.fingerprint_without_passphrase,
                "has_passphrase": self.has_passphrase, "created": self.created, "version": self.version,
                "kdf": {"name": self.kdf, "opslimit": self.opslimit, "memlimit": self.memlimit},
                "cipher": self.cipher}


# ---------------------------------------------------------------- paths and names

def keystore_folder(home: Path | str) -> Path:
    return Path(home) / FOLDER


def keystore_path(home: Path | str, name: str) -> Path:
    """`<home>/keystores/<name>.json`, after checking the name (no path tricks possible)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise BadInput("a keystore name is 1 to 64 letters, digits, '_' or '-'", code="keystore-name",
                       where=repr(name) if isinstance(name, str) else None,
                       hint="pick a name such as 'treasury-1'")
    return keystore_folder(home) / f"{name}.json"


# ---------------------------------------------------------------- errors

def _damaged(path: Path, why: str) -> SecretProblem:
    return SecretProblem(
        f"the keystore is damaged ({why}); the backup words (or SLIP-39 shares) are needed to restore it",
        where=str(path), code="keystore-damaged",
        hint="restore the seed from its backup words or SLIP-39 shares into a new keystore")


def _wrong_password(path: Path) -> SecretProblem:
    return SecretProblem("wrong password", where=str(path), code="wrong-password",
                         hint="type the keystore password again (the BIP-39 passphrase is a different secret)")


# ---------------------------------------------------------------- the file format

def _canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _checksum(doc: dict) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "checksum"})).hexdigest()


def _hex_field(doc: dict, key: str, path: Path, *, size: int | None = None, min_size: int = 0) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise _damaged(path, f"'{key}' is not lowercase hex")
    data = bytes.fromhex(value)
    if (size is not None and len(data) != size) or len(data) < min_size:
        raise _damaged(path, f"'{key}' has the wrong length")
    return data


def _int_field(doc: dict, key: str, path: Path, low: int, high: int) -> int:
    value = doc.get(key)
    if type(value) is not int or not low <= value <= high:
        raise _damaged(path, f"'{key}' is not a whole number from {low} to {high}")
    return value


@dataclass(frozen=True, repr=False)
class _Sealed:
    """A parsed, structurally checked keystore file (all public data)."""

    info: KeystoreInfo
    salt: bytes
    nonce: bytes
    ciphertext: bytes


def _parse(name: str, path: Path, data: bytes) -> _Sealed:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise _damaged(path, "not a complete JSON document") from None
    if not isinstance(doc, dict):
        raise _damaged(path, "not a JSON object")
    if doc.get("version") != VERSION or type(doc.get("version")) is not int:
        raise _damaged(path, f"unknown version {json.dumps(doc.get('version'))[:20]}, expected {VERSION}")
    keys = set(doc)
    if not _FIELDS <= keys or keys - _FIELDS - _OPTIONAL_FIELDS:
        raise _damaged(path, "missing or unexpected fields")
    checksum = doc["checksum"]
    if not isinstance(checksum, str) or checksum != _checksum(doc):
        raise _damaged(path, "its checksum does not match its contents")
    kdf = doc["kdf"]
    if not isinstance(kdf, dict) or set(kdf) != _KDF_FIELDS or kdf["name"] != KDF_NAME:
        raise _damaged(path, "unknown key derivation")
    if doc["cipher"] != CIPHER_NAME:
        raise _damaged(path, "unknown cipher")
    opslimit = _int_field(kdf, "opslimit", path, 1, OPSLIMIT_SENSITIVE)
    memlimit = _int_field(kdf, "memlimit", path, 8192, MEMLIMIT_SENSITIVE)
    salt = _hex_field(kdf, "salt", path, size=SALT_BYTES)
    nonce = _hex_field(doc, "nonce", path, size=NONCE_BYTES)
    ciphertext = _hex_field(doc, "ciphertext", path, min_size=MAC_BYTES + 1)
    fingerprint = _hex_field(doc, "fingerprint", path, size=4).hex()
    bare = (_hex_field(doc, "fingerprint_without_passphrase", path, size=4).hex()
            if "fingerprint_without_passphrase" in doc else None)
    created = doc["created"]
    if not isinstance(created, str) or len(created) > 64:
        raise _damaged(path, "'created' is not a time")
    info = KeystoreInfo(name=name, path=path, fingerprint=fingerprint, fingerprint_without_passphrase=bare,
                        created=created, opslimit=opslimit, memlimit=memlimit)
    return _Sealed(info=info, salt=salt, nonce=nonce, ciphertext=ciphertext)


def _read(home: Path | str, name: str) -> _Sealed:
    """One bounded read of the file, then a full structural check; never a partial read."""
    from coldsign.store import read_limited

    path = keystore_path(home, name)
    try:
        data = read_limited(path, KEYSTORE_MAX_BYTES, what=f"keystore '{name}'")
    except NotFound:
        raise _not_found(path) from None
    except BadInput:
        raise _damaged(path, f"larger than {KEYSTORE_MAX_BYTES} bytes or not a file") from None
    return _parse(name, path, data)


# ---------------------------------------------------------------- crypto

def _password_bytes(password: Secret, *, what: str = "keystore password") -> bytes:
    value = password.reveal()
    if isinstance(value, str):
        value = unicodedata.normalize("NFKD", value).encode("utf-8")
    if not isinstance(value, bytes) or not value:
        raise SecretProblem(f"the {what} is empty", code="empty-password", hint="choose a non-empty password")
    return value


def _derive_key(password: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    from nacl.pwhash import argon2id

    return argon2id.kdf(KEY_BYTES, password, salt, opslimit=opslimit, memlimit=memlimit)


def _check_limits(opslimit: int, memlimit: int) -> None:
    if type(opslimit) is not int or not OPSLIMIT_INTERACTIVE <= opslimit <= OPSLIMIT_SENSITIVE:
        raise BadInput(f"argon2id opslimit must be from {OPSLIMIT_INTERACTIVE} to {OPSLIMIT_SENSITIVE}",
                       code="keystore-kdf")
    if type(memlimit) is not int or not MEMLIMIT_INTERACTIVE <= memlimit <= MEMLIMIT_SENSITIVE:
        raise BadInput(f"argon2id memlimit must be from {MEMLIMIT_INTERACTIVE} to {MEMLIMIT_SENSITIVE} bytes",
                       code="keystore-kdf")


def _seal(plaintext: bytes, password: bytes, opslimit: int, memlimit: int,
          public: dict) -> bytes:
    """The encrypted file's bytes: fresh salt and nonce, the public fields, the checksum."""
    import nacl.utils
    from nacl.secret import SecretBox

    salt = nacl.utils.random(SALT_BYTES)
    nonce = nacl.utils.random(NONCE_BYTES)
    box = SecretBox(_derive_key(password, salt, opslimit, memlimit))
    ciphertext = box.encrypt(plaintext, nonce).ciphertext
    doc = {"version": VERSION,
           "kdf": {"name": KDF_NAME, "opslimit": opslimit, "memlimit": memlimit, "salt": salt.hex()},
           "cipher": CIPHER_NAME, "nonce": nonce.hex(), "ciphertext": ciphertext.hex(), **public}
    doc["checksum"] = _checksum(doc)
    return (json.dumps(doc, indent=2) + "\n").encode()


def _unseal(sealed: _Sealed, password: Secret) -> Secret:
    """The plaintext document {"mnemonic", "passphrase"} in a Secret, or SecretProblem."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    path = sealed.info.path
    key = _derive_key(_password_bytes(password), sealed.salt, sealed.info.opslimit, sealed.info.memlimit)
    try:
        plaintext = SecretBox(key).decrypt(sealed.ciphertext, sealed.nonce)
    except CryptoError:
        # NOTE: the checksum held, so the bytes are as written: the password is what differs.
        raise _wrong_password(path) from None
    try:
        doc = json.loads(plaintext.decode("utf-8"))
        mnemonic, passphrase = doc["mnemonic"], doc["passphrase"]
    except (ValueError, KeyError, TypeError):
        raise _damaged(path, "the decrypted contents are not a seed") from None
    if not isinstance(mnemonic, str) or not (passphrase is None or isinstance(passphrase, str)):
        raise _damaged(path, "the decrypted contents are not a seed")
    return Secret((mnemonic, passphrase))


def _write(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Atomic write, mode 0600. NOTE: with `replace=False` (a new keystore) the name must still be free
    when the file lands: `create` checks first, but Argon2id takes seconds, and another `key new`/
    `key restore` finishing meanwhile must not have its keystore (its only copy of a seed besides
    the words) replaced by a rename."""
    from coldsign.store import atomic_write

    if len(data) > KEYSTORE_MAX_BYTES:
        raise BadInput("the keystore would be larger than the keystore size limit", where=str(path),
                       code="keystore-too-large", hint=f"use a BIP-39 passphrase under {PASSPHRASE_MAX_CHARS} characters")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        atomic_write(path, data, mode=0o600, replace=replace)
    except FileExistsError:
        raise _exists(path) from None


def _not_found(path: Path) -> NotFound:
    return NotFound(f"no keystore named '{path.stem}'", where=str(path), code="keystore-not-found",
                    hint="`coldsign key list` shows the keystores in this home folder")


def _exists(path: Path) -> Refused:
    return Refused(f"a keystore named '{path.stem}' already exists", where=str(path), code="keystore-exists",
                   hint="choose another name, or delete the old keystore after checking its backup")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- the API

def require_free(home: Path | str, name: str) -> Path:
    """The path of a new keystore `name` (name checked), Refused if one exists: for the CLI to say so
    before it asks for any secret. `create` refuses again as the file lands."""
    path = keystore_path(home, name)
    if path.exists():
        raise _exists(path)
    return path


def create(home: Path | str, name: str, mnemonic: Secret, password: Secret, passphrase: Secret | None = None,
           *, opslimit: int = DEFAULT_OPSLIMIT, memlimit: int = DEFAULT_MEMLIMIT,
           overwrite: bool = False) -> KeystoreInfo:
    """Encrypt `mnemonic` (checked, normalized) and the optional BIP-39 `passphrase` under `password`.

    An existing keystore of that name is Refused unless `overwrite`. An empty passphrase is no passphrase.
    """
    path = keystore_path(home, name)
    _check_limits(opslimit, memlimit)
    if path.exists() and not overwrite:
        raise _exists(path)
    pw = _password_bytes(password)
    words = normalize_mnemonic(mnemonic.reveal())
    phrase = passphrase.reveal() if passphrase is not None else None
    if phrase is not None and not isinstance(phrase, str):
        raise BadInput("the BIP-39 passphrase must be text", code="passphrase")
    phrase = phrase or None
    if phrase is not None and len(phrase) > PASSPHRASE_MAX_CHARS:
        raise BadInput(f"the BIP-39 passphrase is longer than {PASSPHRASE_MAX_CHARS} characters", code="passphrase")
    # with a passphrase, the seed also knows the fingerprint of the bare words
    public = SeedKey.from_mnemonic(Secret(words), Secret(phrase) if phrase else None, where="mnemonic").fingerprints()
    public["created"] = _now()
    plaintext = json.dumps({"mnemonic": words, "passphrase": phrase}).encode()
    _write(path, _seal(plaintext, pw, opslimit, memlimit, public), replace=overwrite)
    return info(home, name)


def info(home: Path | str, name: str) -> KeystoreInfo:
    """The public fields of a keystore, checked for damage; no password needed."""
    return _read(home, name).info


def open_seed(home: Path | str, name: str, password: Secret) -> SeedKey:
    """Decrypt the keystore and return its seed's root key (passphrase applied when one is stored)."""
    return _open(home, name, password)[2]


def open_words(home: Path | str, name: str, password: Secret) -> tuple[Secret, Secret | None]:
    """Decrypt the keystore: its words and BIP-39 passphrase (checked against the stored fingerprint),
    for a backup of a seed that lives in a keystore (SLIP-39 shares, a SeedQR)."""
    words, passphrase, _seed = _open(home, name, password)
    return words, passphrase


def _open(home: Path | str, name: str, password: Secret) -> tuple[Secret, Secret | None, SeedKey]:
    sealed = _read(home, name)
    mnemonic, phrase = _unseal(sealed, password).reveal()
    words, passphrase = Secret(mnemonic), Secret(phrase) if phrase else None
    try:
        seed = SeedKey.from_mnemonic(words, passphrase, where=str(sealed.info.path))
    except SecretProblem:
        raise _damaged(sealed.info.path, "the decrypted mnemonic is not valid") from None
    if seed.fingerprint_hex != sealed.info.fingerprint:
        raise _damaged(sealed.info.path, "the decrypted seed does not match the stored fingerprint")
    return words, passphrase, seed


def change_password(home: Path | str, name: str, old: Secret, new: Secret, *,
                    opslimit: int | None = None, memlimit: int | None = None) -> KeystoreInfo:
    """Re-encrypt under `new` with a fresh salt and nonce; KDF parameters kept unless given."""
    sealed = _read(home, name)
    new_pw = _password_bytes(new, what="new keystore password")
    opslimit = sealed.info.opslimit if opslimit is None else opslimit
    memlimit = sealed.info.memlimit if memlimit is None else memlimit
    _check_limits(opslimit, memlimit)
    mnemonic, passphrase = _unseal(sealed, old).reveal()
    public = {"fingerprint": sealed.info.fingerprint}
    if sealed.info.fingerprint_without_passphrase is not None:
        public["fingerprint_without_passphrase"] = sealed.info.fingerprint_without_passphrase
    public["created"] = sealed.info.created
    plaintext = json.dumps({"mnemonic": mnemonic, "passphrase": passphrase}).encode()
    _write(sealed.info.path, _seal(plaintext, new_pw, opslimit, memlimit, public))
    return info(home, name)


def list_keystores(home: Path | str) -> list[str]:
    """Names of the keystores in `home`, sorted; temp files and foreign files are ignored."""
    folder = keystore_folder(home)
    if not folder.is_dir():
        return []
    names = [p.name[:-len(".json")] for p in folder.iterdir()
             if p.name.endswith(".json") and p.is_file()]
    return sorted(n for n in names if NAME_PATTERN.fullmatch(n))


def delete(home: Path | str, name: str) -> Path:
    """Remove a keystore file (the folder is fsynced so the removal is durable)."""
    from coldsign.store import sync_folder

    path = keystore_path(home, name)
    try:
        path.unlink()
    except FileNotFoundError:
        raise _not_found(path) from None
    sync_folder(path.parent)
    return path
