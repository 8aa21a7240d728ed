"""`coldsign key identity` and `coldsign key roster`, as users run them.

Seeds: alice and bob of tests/walletkit.py (BIP-39 words of entropy 0x01 * 16 and 0x02 * 16), from
word files or from keystores (Argon2id at libsodium's INTERACTIVE limits through the fast_kdf fixture;
password "correct horse"). The identity key is m/1668246628h/0h/<index>h (SLIP-10 Ed25519); the roster
file lives outside the home folder, as an auditor's copy would. The leak test runs the real program in a
child process with --debug and a failure injected after the identity key is derived, then looks for
every adjacent word pair of the mnemonic, the root xprv/tprv, the identity private key and the password
in stdout, stderr, the home folder and the roster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import walletkit as W
from coldsign.keys.identity import IdentityKey, identity_path, slip10_ed25519
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey
from test_key_store_cli import PASSPHRASE, PASSWORD, invoke, secret_file
from test_key_store_cli import assert_no_secret as assert_no_seed_secret

pytestmark = pytest.mark.usefixtures("fast_kdf")


def identity_of(name: str, index: int = 0, passphrase: str | None = None) -> IdentityKey:
    seed = SeedKey.from_mnemonic(Secret(W.mnemonic(name)), Secret(passphrase) if passphrase else None)
    return IdentityKey.from_seed(seed, index)


@pytest.fixture()
def files(tmp_path):
    return {"alice": W.write_mnemonic(tmp_path, "alice"), "bob": W.write_mnemonic(tmp_path, "bob"),
            "password": secret_file(tmp_path, "password.txt", PASSWORD),
            "passphrase": secret_file(tmp_path, "passphrase.txt", PASSPHRASE)}


@pytest.fixture()
def home(tmp_path, files):
    """A home folder with alice's seed in keystore "alice"."""
    home = tmp_path / "home"
    result = invoke("--home", str(home), "key", "restore", "--keystore", "alice", "--mnemonic-file",
                    str(files["alice"]), "--password-file", str(files["password"]), "--json")
    assert result.exit_code == 0, result.output
    return home


# ---------------------------------------------------------------- the identity

def test_identity_from_words(tmp_path, files):
    result = invoke("--home", str(tmp_path / "home"), "key", "identity", "--mnemonic-file", str(files["alice"]),
                    "--json")
    assert result.exit_code == 0, result.output
    key = identity_of("alice")
    assert json.loads(result.stdout) == {"public_key": key.public_hex, "fingerprint": key.fingerprint,
                                         "path": "m/1668246628h/0h/0h", "index": 0,
                                         "seed_fingerprint": W.seed("alice").fingerprint_hex}


def test_identity_from_the_keystore_is_the_one_from_the_words(home, files):
    from_keystore = invoke("--home", str(home), "--json", "key", "identity", "--keystore", "alice",
                           "--password-file", str(files["password"]))
    from_words = invoke("--home", str(home), "--json", "key", "identity", "--mnemonic-file", str(files["alice"]))
    assert from_keystore.exit_code == 0 and from_words.exit_code == 0, from_keystore.output + from_words.output
    assert json.loads(from_keystore.stdout) == json.loads(from_words.stdout)
    assert json.loads(from_keystore.stdout)["public_key"] == identity_of("alice").public_hex


def test_a_passphrase_gives_another_identity(tmp_path, files):
    result = invoke("--home", str(tmp_path / "home"), "key", "identity", "--mnemonic-file", str(files["alice"]),
                    "--passphrase-file", str(files["passphrase"]), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    with_phrase = identity_of("alice", passphrase=PASSPHRASE)
    assert doc["public_key"] == with_phrase.public_hex != identity_of("alice").public_hex
    assert doc["seed_fingerprint"] == SeedKey.from_mnemonic(Secret(W.mnemonic("alice")),
                                                           Secret(PASSPHRASE)).fingerprint_hex


def test_index_selects_a_rotated_identity(tmp_path, files):
    result = invoke("--home", str(tmp_path / "home"), "key", "identity", "--mnemonic-file", str(files["alice"]),
                    "--index", "2", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["index"] == 2 and doc["path"] == "m/1668246628h/0h/2h"
    assert doc["public_key"] == identity_of("alice", 2).public_hex != identity_of("alice").public_hex
    negative = invoke("--home", str(tmp_path / "home"), "key", "identity", "--mnemonic-file", str(files["alice"]),
                      "--index", "-1")
    assert negative.exit_code == 2


def test_human_output(tmp_path, files):
    result = invoke("--home", str(tmp_path / "home"), "key", "identity", "--mnemonic-file", str(files["alice"]))
    assert result.exit_code == 0, result.output
    key = identity_of("alice")
    assert f"fingerprint: {key.fingerprint}" in result.stdout
    assert f"public key:  {key.public_hex}" in result.stdout
    assert f"m/1668246628h/0h/0h of seed {W.seed('alice').fingerprint_hex}" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["--keystore", "alice", "--mnemonic-file", "w.txt"], "--keystore and --mnemonic-file/--passphrase-file both "
                                                          "give a seed; pass one"),
    (["--mnemonic-file", "w.txt", "--password-file", "p.txt"], "--password-file is the keystore password; it "
                                                               "needs --keystore NAME"),
    (["--mnemonic-file", "w.txt", "--name", "Alice"], "--name and --role are the roster entry; they need "
                                                      "--roster FILE"),
    (["--mnemonic-file", "w.txt", "--roster", "r.json", "--name", "Alice"], "--roster needs --name NAME and "
                                                                           "--role ROLE for this custodian's entry"),
])
def test_contradictory_options_are_usage_errors(tmp_path, args, message):
    result = invoke("--home", str(tmp_path / "home"), "--json", "key", "identity", *args)
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["message"] == message
    assert not (tmp_path / "r.json").exists()


def test_no_terminal_and_no_seed_source_is_a_usage_error(tmp_path):
    result = invoke("--home", str(tmp_path / "home"), "key", "identity")
    assert result.exit_code == 2
    assert "no --mnemonic-file and no terminal to ask for the words on" in result.stderr


# ---------------------------------------------------------------- the roster

def test_identity_adds_custodians_to_a_new_roster(tmp_path, home, files):
    roster = tmp_path / "audit" / "roster.json"
    first = invoke("--home", str(home), "--json", "key", "identity", "--keystore", "alice", "--password-file",
                   str(files["password"]), "--roster", str(roster), "--name", "Alice", "--role", "admin")
    assert first.exit_code == 0, first.output
    alice = identity_of("alice")
    assert json.loads(first.stdout) == {"public_key": alice.public_hex, "fingerprint": alice.fingerprint,
                                        "path": "m/1668246628h/0h/0h", "index": 0,
                                        "seed_fingerprint": W.seed("alice").fingerprint_hex,
                                        "roster": str(roster), "added": True}
    written = roster.read_bytes()

    again = invoke("--home", str(home), "--json", "key", "identity", "--mnemonic-file", str(files["alice"]),
                   "--roster", str(roster), "--name", "Alice", "--role", "admin")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["added"] is False and roster.read_bytes() == written

    bob = invoke("--home", str(home), "key", "identity", "--mnemonic-file", str(files["bob"]), "--index", "1",
                 "--roster", str(roster), "--name", "Bob Ng", "--role", "approver")
    assert bob.exit_code == 0, bob.output
    assert f"Added to the roster {roster}" in bob.stdout

    shown = invoke("--json", "key", "roster", str(roster))
    assert shown.exit_code == 0, shown.output
    bob_key = identity_of("bob", 1)
    assert json.loads(shown.stdout) == {"roster": str(roster), "format": "coldsign-roster", "version": 1,
                                        "custodians": [
        {"name": "Alice", "role": "admin", "identity": alice.public_hex, "fingerprint": alice.fingerprint,
         "index": 0},
        {"name": "Bob Ng", "role": "approver", "identity": bob_key.public_hex,
         "fingerprint": bob_key.fingerprint, "index": 1}]}

    table = invoke("key", "roster", str(roster))
    assert table.exit_code == 0, table.output
    for text in ("Alice", "admin", alice.fingerprint, "Bob Ng", "approver", bob_key.fingerprint,
                 f"{bob_key.fingerprint}  {bob_key.public_hex}"):
        assert text in table.stdout


@pytest.fixture()
def roster_with_alice(tmp_path, files):
    roster = tmp_path / "roster.json"
    result = invoke("--home", str(tmp_path / "home"), "key", "identity", "--mnemonic-file", str(files["alice"]),
                    "--roster", str(roster), "--name", "Alice", "--role", "admin")
    assert result.exit_code == 0, result.output
    return roster


def test_another_key_under_a_taken_name_is_refused(tmp_path, files, roster_with_alice):
    before = roster_with_alice.read_bytes()
    result = invoke("--home", str(tmp_path / "home"), "--json", "key", "identity", "--mnemonic-file",
                    str(files["bob"]), "--roster", str(roster_with_alice), "--name", "alice", "--role", "admin")
    assert result.exit_code == 4, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "roster-duplicate"
    assert error["message"] == (f'the name "alice" is already in the roster with another identity key '
                                f'({identity_of("alice").fingerprint}, not {identity_of("bob").fingerprint}); '
                                "nothing was changed")
    assert roster_with_alice.read_bytes() == before


def test_the_same_key_under_another_name_is_refused(tmp_path, home, files, roster_with_alice):
    before = roster_with_alice.read_bytes()
    result = invoke("--home", str(home), "key", "identity", "--keystore", "alice", "--password-file",
                    str(files["password"]), "--roster", str(roster_with_alice), "--name", "Mallory", "--role", "admin")
    assert result.exit_code == 4, result.output
    assert (f'error: identity {identity_of("alice").fingerprint} is already in the roster under the name "Alice", '
            'not "Mallory"; nothing was changed') in result.stderr
    assert roster_with_alice.read_bytes() == before


def test_a_damaged_roster_is_bad_input_and_no_secret_is_read(tmp_path, files, roster_with_alice):
    doc = json.loads(roster_with_alice.read_text())
    doc["custodians"][0]["identity"] = identity_of("bob").public_hex  # the fingerprint no longer matches
    roster_with_alice.write_text(json.dumps(doc))
    expected = (f'custodian 1 ("Alice"): fingerprint {identity_of("alice").fingerprint} does not match the '
                f'identity key (whose fingerprint is {identity_of("bob").fingerprint})')

    shown = invoke("--json", "key", "roster", str(roster_with_alice))
    assert shown.exit_code == 3, shown.output
    assert json.loads(shown.stdout)["error"]["message"] == expected
    assert json.loads(shown.stdout)["error"]["where"] == str(roster_with_alice)

    # a missing words file would be a different error: the roster is checked first
    added = invoke("--home", str(tmp_path / "home"), "--json", "key", "identity", "--mnemonic-file",
                   str(tmp_path / "missing-words.txt"), "--roster", str(roster_with_alice), "--name", "Carol",
                   "--role", "custodian")
    assert added.exit_code == 3, added.output
    assert json.loads(added.stdout)["error"]["message"] == expected

    roster_with_alice.write_text("{not json")
    garbled = invoke("key", "roster", str(roster_with_alice))
    assert garbled.exit_code == 3
    assert "error: " + str(roster_with_alice) + ": the roster is not valid JSON" in garbled.stderr


def test_a_missing_roster_is_not_found(tmp_path):
    result = invoke("--json", "key", "roster", str(tmp_path / "nope.json"))
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"] == {"code": "not-found", "exit": 3, "message": "roster not found",
                                                  "where": str(tmp_path / "nope.json")}


def test_a_bad_name_is_bad_input_and_writes_nothing(tmp_path, files):
    roster = tmp_path / "roster.json"
    result = invoke("--home", str(tmp_path / "home"), "--json", "key", "identity", "--mnemonic-file",
                    str(files["alice"]), "--roster", str(roster), "--name", " Alice", "--role", "admin")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["error"]["message"] == ("the name must be non-empty, without leading or "
                                                             "trailing spaces")
    assert not roster.exists()


@pytest.mark.parametrize("command", ["identity", "roster"])
def test_help_has_an_example(command):
    result = invoke("key", command, "--help")
    assert result.exit_code == 0 and "Example:" in result.stdout and "--json" in result.stdout


# ---------------------------------------------------------------- leaks

RUN = """
import sys
from coldsign.keys import keystore
keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT = keystore.OPSLIMIT_INTERACTIVE, keystore.MEMLIMIT_INTERACTIVE
inject = sys.argv.pop(1)
if inject == "save":  # after the identity key is derived, while the roster is written
    import coldsign.keys.roster
    def boom(path, roster):
        raise RuntimeError("injected failure writing " + repr(roster))
    coldsign.keys.roster.save = boom
from coldsign.cli.main import main
sys.exit(main())
"""


def run_coldsign(inject: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", RUN, inject, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env, timeout=120)


def assert_no_secret(text: str) -> None:
    """Beyond the mnemonic's word pairs, the root xprv/tprv and the password: the identity keys."""
    assert_no_seed_secret(text)
    for index in (0, 1):
        private = slip10_ed25519(W.seed("alice").seed.reveal(), identity_path(index))[0].reveal()
        assert private.hex() not in text and private.hex().upper() not in text
    assert W.seed("alice").seed.reveal().hex() not in text


def test_nothing_secret_leaks_with_debug_and_an_injected_failure(tmp_path, home, files):
    roster = tmp_path / "roster.json"
    failed = run_coldsign("save", "--home", str(home), "--debug", "key", "identity", "--keystore", "alice",
                          "--password-file", str(files["password"]), "--roster", str(roster), "--name", "Alice",
                          "--role", "admin")
    assert failed.returncode != 0 and "RuntimeError: injected failure writing Roster(custodians=" in failed.stderr
    assert f"Custodian(name='Alice', role='admin', identity={identity_of('alice').fingerprint}, index=0)" \
        in failed.stderr
    assert not roster.exists()

    added = run_coldsign("none", "--home", str(home), "--debug", "--json", "key", "identity", "--keystore", "alice",
                         "--password-file", str(files["password"]), "--roster", str(roster), "--name", "Alice",
                         "--role", "admin", "--index", "1")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["added"] is True

    refused = run_coldsign("none", "--home", str(home), "--debug", "key", "identity", "--mnemonic-file",
                           str(files["alice"]), "--roster", str(roster), "--name", "Mallory", "--role", "admin",
                           "--index", "1")
    assert refused.returncode == 4, refused.stderr

    for run in (failed, added, refused):
        assert_no_secret(run.stdout)
        assert_no_secret(run.stderr)
    for path in [*home.rglob("*"), roster]:
        if path.is_file():
            text = path.read_bytes().decode("latin-1")
            if path.parent.name == "keystores":
                doc = json.loads(text)
                doc.pop("ciphertext")
                text = json.dumps(doc)
            assert_no_secret(text)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".roster")) == []  # no temp file
