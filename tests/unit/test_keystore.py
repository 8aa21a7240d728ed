"""The encrypted keystore (issue 4 §3): round trips, wrong passwords, damage, file mode, KDF defaults,
redaction, and a crash test that SIGKILLs a child process rewriting the keystore.

Fixture: the BIP-39 vector mnemonic "legal winner thank year wave sausage worth useful legal winner
thank yellow" (entropy 7f7f...7f), with and without the BIP-39 passphrase "TREZOR". Expected master
fingerprints are computed here independently of coldsign (HASH160 of the BIP-32 root public key).
Tests use argon2id INTERACTIVE limits for speed, except the one that checks the real defaults.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nacl.pwhash import argon2id

from coldsign.errors import BadInput, ExitStatus, NotFound, Refused, SecretProblem
from coldsign.keys import keystore
from coldsign.keys.secret import Secret

MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
WORDS = sorted(set(MNEMONIC.split()))
PASSPHRASE = "TREZOR"
FAST = {"opslimit": argon2id.OPSLIMIT_INTERACTIVE, "memlimit": argon2id.MEMLIMIT_INTERACTIVE}


def master_fingerprint(mnemonic: str, passphrase: str = "") -> str:
    from embit import bip32, bip39
    from embit.hashes import hash160

    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic, passphrase))
    return hash160(root.key.get_public_key().sec())[:4].hex()


FP_BARE = master_fingerprint(MNEMONIC)
FP_TREZOR = master_fingerprint(MNEMONIC, PASSPHRASE)


def assert_no_words(data: bytes | str, what: str) -> None:
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    for word in WORDS + [PASSPHRASE, "hunter2", "correct horse"]:
        assert word not in text, f"{what} leaks a secret"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One keystore with the TREZOR passphrase, made once (argon2 costs time); tests copy its bytes."""
    home = tmp_path_factory.mktemp("home")
    made_info = keystore.create(home, "vault", Secret(MNEMONIC), Secret("hunter2"), Secret(PASSPHRASE), **FAST)
    return made_info.path.read_bytes()


def install(home: Path, data: bytes, name: str = "vault") -> Path:
    path = keystore.keystore_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------- round trips

def test_round_trip_without_passphrase(tmp_path):
    made_info = keystore.create(tmp_path, "plain", Secret("  Legal winner THANK year wave sausage worth useful "
                                                          "legal winner thank yellow\n"), Secret("hunter2"), **FAST)
    assert made_info.fingerprint == FP_BARE
    assert made_info.fingerprint_without_passphrase is None and not made_info.has_passphrase
    seed = keystore.open_seed(tmp_path, "plain", Secret("hunter2"))
    assert seed.fingerprint_hex == FP_BARE
    assert keystore.info(tmp_path, "plain") == made_info
    doc = json.loads(made_info.path.read_bytes())
    assert "fingerprint_without_passphrase" not in doc
    assert doc["fingerprint"] == FP_BARE and doc["version"] == 1 and doc["cipher"] == "xsalsa20poly1305"


def test_round_trip_with_passphrase(tmp_path, made):
    install(tmp_path, made)
    shown = keystore.info(tmp_path, "vault")
    assert (shown.fingerprint, shown.fingerprint_without_passphrase) == (FP_TREZOR, FP_BARE)
    assert shown.has_passphrase and FP_TREZOR != FP_BARE
    seed = keystore.open_seed(tmp_path, "vault", Secret("hunter2"))
    assert seed.fingerprint_hex == FP_TREZOR
    # The passphrase is applied: the root key is the TREZOR one, not the bare seed's.
    assert seed.root.reveal().to_base58() != keystore.SeedKey.from_mnemonic(Secret(MNEMONIC)).root.reveal().to_base58()


def test_file_format_and_mode(tmp_path):
    made_info = keystore.create(tmp_path, "fmt", Secret(MNEMONIC), Secret("hunter2"), Secret(PASSPHRASE), **FAST)
    assert made_info.path == tmp_path / "keystores" / "fmt.json"
    assert stat.S_IMODE(os.stat(made_info.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(made_info.path.parent).st_mode) == 0o700
    doc = json.loads(made_info.path.read_bytes())
    assert set(doc) == {"version", "kdf", "cipher", "nonce", "ciphertext", "fingerprint",
                        "fingerprint_without_passphrase", "created", "checksum"}
    assert doc["kdf"]["name"] == "argon2id" and len(bytes.fromhex(doc["kdf"]["salt"])) == 16
    assert (doc["kdf"]["opslimit"], doc["kdf"]["memlimit"]) == (FAST["opslimit"], FAST["memlimit"])
    assert len(bytes.fromhex(doc["nonce"])) == 24
    assert doc["created"].endswith("Z") and doc["created"][4] == "-"
    assert_no_words(made_info.path.read_bytes(), "the keystore file")
    assert list(made_info.path.parent.iterdir()) == [made_info.path]      # no temp file left


def test_defaults_are_at_least_moderate(tmp_path):
    assert keystore.DEFAULT_OPSLIMIT >= argon2id.OPSLIMIT_MODERATE
    assert keystore.DEFAULT_MEMLIMIT >= argon2id.MEMLIMIT_MODERATE
    # The module's copies of libsodium's constants are the library's.
    assert (keystore.OPSLIMIT_INTERACTIVE, keystore.MEMLIMIT_INTERACTIVE) == (argon2id.OPSLIMIT_INTERACTIVE,
                                                                              argon2id.MEMLIMIT_INTERACTIVE)
    assert (keystore.OPSLIMIT_SENSITIVE, keystore.MEMLIMIT_SENSITIVE) == (argon2id.OPSLIMIT_SENSITIVE,
                                                                          argon2id.MEMLIMIT_SENSITIVE)
    made_info = keystore.create(tmp_path, "real", Secret(MNEMONIC), Secret("hunter2"))   # the real defaults, once
    assert made_info.opslimit >= argon2id.OPSLIMIT_MODERATE and made_info.memlimit >= argon2id.MEMLIMIT_MODERATE
    doc = json.loads(made_info.path.read_bytes())
    assert doc["kdf"]["opslimit"] >= argon2id.OPSLIMIT_MODERATE
    assert doc["kdf"]["memlimit"] >= argon2id.MEMLIMIT_MODERATE


def test_weak_kdf_parameters_are_refused(tmp_path):
    with pytest.raises(BadInput, match="opslimit must be from 2 to 4"):
        keystore.create(tmp_path, "weak", Secret(MNEMONIC), Secret("hunter2"), opslimit=1,
                        memlimit=argon2id.MEMLIMIT_INTERACTIVE)
    with pytest.raises(BadInput, match="memlimit must be from 67108864"):
        keystore.create(tmp_path, "weak", Secret(MNEMONIC), Secret("hunter2"), opslimit=2, memlimit=8192)
    assert not keystore.keystore_path(tmp_path, "weak").exists()


# ---------------------------------------------------------------- names, overwrite, list, delete

def test_existing_name_is_refused_without_overwrite(tmp_path, made):
    install(tmp_path, made)
    with pytest.raises(Refused) as caught:
        keystore.create(tmp_path, "vault", Secret(MNEMONIC), Secret("other"), **FAST)
    assert caught.value.exit_status == ExitStatus.REFUSED == 4
    assert caught.value.message == "a keystore named 'vault' already exists"
    assert keystore.keystore_path(tmp_path, "vault").read_bytes() == made
    replaced = keystore.create(tmp_path, "vault", Secret(MNEMONIC), Secret("other"), overwrite=True, **FAST)
    assert replaced.fingerprint == FP_BARE
    assert keystore.open_seed(tmp_path, "vault", Secret("other")).fingerprint_hex == FP_BARE


def test_a_keystore_made_meanwhile_is_never_replaced(tmp_path, made, monkeypatch):
    """`create` checks the name, then spends seconds in Argon2id; another `key restore` of the same name
    that finishes in between must keep its keystore (a rename over it would lose that seed's copy)."""
    real_seal = keystore._seal

    def seal_while_another_restore_lands(*args, **kwargs):
        sealed = real_seal(*args, **kwargs)
        install(tmp_path, made)  # the other process's keystore, written while we derived our key
        return sealed

    monkeypatch.setattr(keystore, "_seal", seal_while_another_restore_lands)
    with pytest.raises(Refused) as caught:
        keystore.create(tmp_path, "vault", Secret(MNEMONIC), Secret("other"), **FAST)
    assert caught.value.code == "keystore-exists"
    assert caught.value.message == "a keystore named 'vault' already exists"
    assert keystore.keystore_path(tmp_path, "vault").read_bytes() == made
    assert sorted(p.name for p in keystore.keystore_folder(tmp_path).iterdir()) == ["vault.json"]  # no temp left


def test_a_new_keystore_is_whole_and_0600(tmp_path):
    made_info = keystore.create(tmp_path, "fresh", Secret(MNEMONIC), Secret("hunter2"), **FAST)
    assert stat.S_IMODE(made_info.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in keystore.keystore_folder(tmp_path).iterdir()) == ["fresh.json"]
    assert keystore.open_seed(tmp_path, "fresh", Secret("hunter2")).fingerprint_hex == FP_BARE


@pytest.mark.parametrize("name", ["", "a" * 65, "../x", "a/b", "a.b", "a b", "é", "a\n", ".vault"])
def test_bad_names(tmp_path, name):
    with pytest.raises(BadInput) as caught:
        keystore.info(tmp_path, name)
    assert caught.value.code == "keystore-name"
    assert caught.value.message == "a keystore name is 1 to 64 letters, digits, '_' or '-'"


def test_list_and_delete(tmp_path, made):
    assert keystore.list_keystores(tmp_path) == []
    install(tmp_path, made, "b-2")
    install(tmp_path, made, "A_1")
    (tmp_path / "keystores" / ".b-2.json.abc.tmp").write_bytes(made)   # a crash leftover is not a keystore
    (tmp_path / "keystores" / "notes.txt").write_text("x")
    assert keystore.list_keystores(tmp_path) == ["A_1", "b-2"]
    assert keystore.delete(tmp_path, "A_1") == tmp_path / "keystores" / "A_1.json"
    assert keystore.list_keystores(tmp_path) == ["b-2"]
    with pytest.raises(NotFound) as caught:
        keystore.delete(tmp_path, "A_1")
    assert caught.value.message == "no keystore named 'A_1'" and caught.value.exit_status == 3
    with pytest.raises(NotFound, match="no keystore named 'ghost'"):
        keystore.open_seed(tmp_path, "ghost", Secret("hunter2"))


def test_change_password(tmp_path, made):
    install(tmp_path, made)
    before = keystore.info(tmp_path, "vault")
    after = keystore.change_password(tmp_path, "vault", Secret("hunter2"), Secret("correct horse"))
    assert after == before            # same public fields: fingerprints, created, KDF parameters
    doc_old, doc_new = json.loads(made), json.loads(after.path.read_bytes())
    assert doc_old["kdf"]["salt"] != doc_new["kdf"]["salt"] and doc_old["nonce"] != doc_new["nonce"]
    assert keystore.open_seed(tmp_path, "vault", Secret("correct horse")).fingerprint_hex == FP_TREZOR
    with pytest.raises(SecretProblem, match="wrong password"):
        keystore.open_seed(tmp_path, "vault", Secret("hunter2"))
    with pytest.raises(SecretProblem, match="wrong password"):
        keystore.change_password(tmp_path, "vault", Secret("hunter2"), Secret("x"))
    with pytest.raises(SecretProblem, match="the new keystore password is empty"):
        keystore.change_password(tmp_path, "vault", Secret("correct horse"), Secret(""))
    assert stat.S_IMODE(os.stat(after.path).st_mode) == 0o600


# ---------------------------------------------------------------- wrong password and damage

def test_wrong_password(tmp_path, made):
    path = install(tmp_path, made)
    with pytest.raises(SecretProblem) as caught:
        keystore.open_seed(tmp_path, "vault", Secret("hunter3"))
    error = caught.value
    assert (error.exit_status, error.code, error.message, error.where) == (6, "wrong-password", "wrong password",
                                                                           str(path))
    assert error.__cause__ is None and error.__suppress_context__       # no library traceback chained
    assert_no_words(str(error) + repr(error) + json.dumps(error.to_json()), "the error")


def assert_damaged(error: SecretProblem, path: Path) -> None:
    assert error.exit_status == ExitStatus.SECRET and error.code == "keystore-damaged"
    assert error.where == str(path)
    assert error.message.startswith("the keystore is damaged (")
    assert error.message.endswith("the backup words (or SLIP-39 shares) are needed to restore it")
    assert_no_words(str(error), "the error")


def test_truncated_at_every_length(tmp_path, made):
    path = install(tmp_path, made)
    for length in list(range(0, len(made) - 1)):
        path.write_bytes(made[:length])
        with pytest.raises(SecretProblem) as caught:
            keystore.info(tmp_path, "vault")
        assert_damaged(caught.value, path)
    # A truncated file is refused before any key derivation, and open_seed says the same.
    path.write_bytes(made[: len(made) // 2])
    with pytest.raises(SecretProblem) as caught:
        keystore.open_seed(tmp_path, "vault", Secret("hunter2"))
    assert_damaged(caught.value, path)
    assert "not a complete JSON document" in caught.value.message


def test_flipped_byte_anywhere_is_damage(tmp_path, made):
    """Flip the low bit of every byte (ciphertext, salt, nonce, fingerprints, JSON syntax): each is
    reported as damage, never as 'wrong password', never as a raw library exception."""
    path = install(tmp_path, made)
    for position in range(len(made)):
        data = bytearray(made)
        data[position] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(SecretProblem) as caught:
            keystore.open_seed(tmp_path, "vault", Secret("hunter2"))
        assert_damaged(caught.value, path)


@pytest.mark.parametrize("field", ["ciphertext", "salt", "nonce", "fingerprint", "created", "opslimit"])
def test_changed_field_is_damage_not_wrong_password(tmp_path, made, field):
    path = install(tmp_path, made)
    doc = json.loads(made)
    holder = doc["kdf"] if field in ("salt", "opslimit") else doc
    value = holder[field]
    holder[field] = value + 1 if isinstance(value, int) else ("0" if value[0] != "0" else "1") + value[1:]
    path.write_text(json.dumps(doc))
    with pytest.raises(SecretProblem) as caught:
        keystore.open_seed(tmp_path, "vault", Secret("hunter2"))
    assert_damaged(caught.value, path)
    assert "checksum does not match" in caught.value.message


def test_structural_damage_with_a_matching_checksum(tmp_path, made):
    """Damage that a careless tool could write with a recomputed checksum is still named."""
    path = install(tmp_path, made)
    cases = {"'nonce' has the wrong length": ("nonce", lambda v: v[:-2]),
             "'ciphertext' is not lowercase hex": ("ciphertext", lambda v: v.upper()),
             "unknown cipher": ("cipher", lambda v: "aes"),
             "'created' is not a time": ("created", lambda v: 5)}
    for why, (field, change) in cases.items():
        doc = json.loads(made)
        doc[field] = change(doc[field])
        doc["checksum"] = keystore._checksum(doc)
        path.write_text(json.dumps(doc))
        with pytest.raises(SecretProblem) as caught:
            keystore.open_seed(tmp_path, "vault", Secret("hunter2"))
        assert_damaged(caught.value, path)
        assert why in caught.value.message
    for text, why in [("[]", "not a JSON object"), ('{"version": 2}', "unknown version 2"),
                      ('{"version": 1}', "missing or unexpected fields"), ("\xff", "not a complete JSON")]:
        path.write_bytes(text.encode("latin-1"))
        with pytest.raises(SecretProblem) as caught:
            keystore.info(tmp_path, "vault")
        assert_damaged(caught.value, path)
        assert why in caught.value.message


def test_oversized_file_is_damage(tmp_path, made):
    path = install(tmp_path, made + b" " * keystore.KEYSTORE_MAX_BYTES)
    with pytest.raises(SecretProblem) as caught:
        keystore.info(tmp_path, "vault")
    assert_damaged(caught.value, path)


# ---------------------------------------------------------------- redaction

def test_reprs_show_no_secret(tmp_path, made):
    install(tmp_path, made)
    shown = keystore.info(tmp_path, "vault")
    seed = keystore.open_seed(tmp_path, "vault", Secret("hunter2"))
    sealed = keystore._read(tmp_path, "vault")
    unsealed = keystore._unseal(sealed, Secret("hunter2"))
    assert unsealed.reveal()[0] == MNEMONIC                # the plaintext is there, behind the wrapper
    for thing in (shown, seed, sealed, unsealed, seed.root, Secret(MNEMONIC)):
        assert_no_words(repr(thing) + str(thing), f"{type(thing).__name__}")
    assert_no_words(json.dumps(shown.to_json()), "KeystoreInfo.to_json")
    assert seed.root.reveal().to_base58() not in repr(seed) + str(seed)


# ---------------------------------------------------------------- crash test

CHILD = """
import sys
from coldsign.keys import keystore
from coldsign.keys.secret import Secret
home, first, second = sys.stdin.read().split("\\n")[:3]
sys.stdout.write("ready\\n"); sys.stdout.flush()
while True:
    keystore.change_password(home, "vault", Secret(first), Secret(second))
    keystore.change_password(home, "vault", Secret(second), Secret(first))
"""


def test_sigkill_during_rewrites_leaves_old_or_new_keystore(tmp_path, made):
    """A child rewrites the keystore in a loop (change_password A→B→A…) and is SIGKILLed after a random
    delay, 30 times. After each kill the keystore opens with A or B, and any temp file left holds no
    plaintext. The random seed is printed so a failure can be replayed."""
    path = install(tmp_path, made)
    seed = int(os.environ.get("KEYSTORE_CRASH_SEED", time.time_ns() % 1_000_000))
    print(f"crash test seed {seed}")
    rng = random.Random(seed)
    passwords = ("hunter2", "correct horse")
    seen, leftovers = [], 0
    for _ in range(30):
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        # NOTE: passwords go to the child on stdin, never argv.
        child.stdin.write(f"{tmp_path}\n{passwords[0]}\n{passwords[1]}\n".encode())
        child.stdin.close()
        assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.6))
        assert child.poll() is None, child.stderr.read().decode()
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
        opened = None
        for password in passwords:
            try:
                opened = keystore.open_seed(tmp_path, "vault", Secret(password))
            except SecretProblem as error:
                assert error.code == "wrong-password", str(error)
                continue
            seen.append(password)
            break
        assert opened is not None and opened.fingerprint_hex == FP_TREZOR
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        for leftover in path.parent.iterdir():
            if leftover != path:
                assert leftover.name.startswith(".vault.json.") and leftover.name.endswith(".tmp")
                assert_no_words(leftover.read_bytes(), "a temp file")
                leftover.unlink()
                leftovers += 1
        passwords = (seen[-1], passwords[1] if seen[-1] == passwords[0] else passwords[0])
    print(f"crash test: {seen.count(passwords[0])}/{len(seen)} kills found the first password; "
          f"{leftovers} temp files left by kills")
    assert len(set(seen)) == 2, f"every kill found the same password {seen}: the writes were never hit"


WRITER = """
import sys
from pathlib import Path
from coldsign.keys import keystore
path, first, second = sys.stdin.read().split("\\n")[:3]
first, second = bytes.fromhex(first), bytes.fromhex(second)
sys.stdout.write("ready\\n"); sys.stdout.flush()
while True:
    keystore._write(Path(path), first)
    keystore._write(Path(path), second)
"""


def test_sigkill_during_bare_writes_leaves_one_whole_version(tmp_path, made):
    """The write step alone, without the KDF, so kills land inside atomic_write: the child writes two
    sealed versions in turn and is SIGKILLed 30 times. The keystore is always byte-for-byte one of the
    two versions; a temp file left behind is a prefix of one of them (ciphertext only, never plaintext)."""
    path = install(tmp_path, made)
    other = keystore.change_password(tmp_path, "vault", Secret("hunter2"), Secret("correct horse")).path.read_bytes()
    versions = (made, other)
    seed = int(os.environ.get("KEYSTORE_CRASH_SEED", time.time_ns() % 1_000_000))
    print(f"bare write crash test seed {seed}")
    rng = random.Random(seed)
    leftovers = 0
    for _ in range(30):
        child = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        child.stdin.write(f"{path}\n{made.hex()}\n{other.hex()}\n".encode())
        child.stdin.close()
        assert child.stdout.readline() == b"ready\n", child.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.05))
        assert child.poll() is None, child.stderr.read().decode()
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()
        assert path.read_bytes() in versions
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        for leftover in path.parent.iterdir():
            if leftover != path:
                data = leftover.read_bytes()
                assert any(version.startswith(data) for version in versions)
                assert_no_words(data, "a temp file")
                leftover.unlink()
                leftovers += 1
    password = "hunter2" if path.read_bytes() == made else "correct horse"
    assert keystore.open_seed(tmp_path, "vault", Secret(password)).fingerprint_hex == FP_TREZOR
    print(f"bare write crash test: {leftovers} temp files left by kills")


def test_an_unreadable_file_is_an_environment_problem_not_a_crash(tmp_path):
    """A file the OS will not let us read is exit 7 naming it, not a crash: mode 000 for a normal user;
    as root (CI) /proc/self/mem, whose first page cannot be read (EIO)."""
    import os

    from coldsign.errors import EnvironmentProblem
    from coldsign.store import read_limited

    path = tmp_path / "locked.json"
    path.write_text("{}")
    path.chmod(0)
    if os.geteuid() == 0:
        path = Path("/proc/self/mem")
    with pytest.raises(EnvironmentProblem) as err:
        read_limited(path, 10, what="roster")
    assert err.value.message.startswith("roster cannot be read") and err.value.where == str(path)
