"""`coldsign key restore | list | show | delete | passphrase` and `psbt sign --keystore`, as users run them.

The seed is alice's (tests/walletkit.py: BIP-39 words of entropy 0x01 * 16, no passphrase); her wpkh
account at 84h/1h/0h on regtest is registered as wallet "vault", and the PSBT (walletkit.honest)
spends two 100,000-sat coins at receive 0/0 and 0/1, pays 150,000 sat to an external P2WPKH and sends
the rest less a 2 sat/vB fee to change 1/0. Keystores use Argon2id at libsodium's INTERACTIVE limits
(the fastest the library accepts) so the tests stay quick; the keystore password is "correct horse".
The leak test runs the real program in a child process, with --debug and a failure injected after the
seed is in memory, and looks for every adjacent word pair of the mnemonic and the seed's xprv/tprv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.keys import keystore
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey

PASSWORD = "correct horse"
PASSPHRASE = "TREZOR"


pytestmark = pytest.mark.usefixtures("fast_kdf")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def secret_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture()
def files(tmp_path):
    return {"words": W.write_mnemonic(tmp_path, "alice"),
            "password": secret_file(tmp_path, "password.txt", PASSWORD),
            "passphrase": secret_file(tmp_path, "passphrase.txt", PASSPHRASE),
            "wrong": secret_file(tmp_path, "wrong.txt", "battery staple")}


@pytest.fixture()
def home(tmp_path, files):
    """A home folder with alice's wpkh wallet registered as "vault" and her seed in keystore "alice"."""
    home = tmp_path / "home"
    result = invoke("--home", str(home), "--network", "regtest", "wallet", "register", "--name", "vault",
                    "--descriptor", W.descriptor("wpkh"), "--mnemonic-file", str(files["words"]))
    assert result.exit_code == 0, result.output
    result = invoke("--home", str(home), "key", "restore", "--keystore", "alice", "--mnemonic-file",
                    str(files["words"]), "--password-file", str(files["password"]), "--json")
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture()
def unsigned(tmp_path):
    _, psbt = W.honest()
    path = tmp_path / "unsigned.psbt"
    path.write_bytes(psbt.serialize())
    return path, psbt


def assert_no_secret(text: str) -> None:
    words = W.mnemonic("alice").split()
    for pair in zip(words, words[1:]):
        assert " ".join(pair) not in text
    root = W.seed("alice").root.reveal()
    assert root.to_base58() not in text
    assert root.to_base58(version=bytes.fromhex("04358394")) not in text  # tprv
    assert PASSWORD not in text


# ---------------------------------------------------------------- restore

def test_restore_with_a_passphrase_stores_and_prints_both_fingerprints(tmp_path, files):
    home = tmp_path / "home"
    result = invoke("--home", str(home), "key", "restore", "--keystore", "treasury-1", "--mnemonic-file",
                    str(files["words"]), "--passphrase-file", str(files["passphrase"]),
                    "--password-file", str(files["password"]), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    with_phrase = SeedKey.from_mnemonic(Secret(W.mnemonic("alice")), Secret(PASSPHRASE)).fingerprint_hex
    assert doc["fingerprint"] == with_phrase
    assert doc["fingerprint_without_passphrase"] == W.seed("alice").fingerprint_hex != with_phrase
    assert doc["has_passphrase"] is True and doc["name"] == "treasury-1"
    assert doc["kdf"] == {"name": "argon2id", "opslimit": keystore.OPSLIMIT_INTERACTIVE,
                          "memlimit": keystore.MEMLIMIT_INTERACTIVE}
    path = home / "keystores" / "treasury-1.json"
    assert doc["path"] == str(path) and (path.stat().st_mode & 0o777) == 0o600
    opened = keystore.open_seed(home, "treasury-1", Secret(PASSWORD))
    assert opened.fingerprint_hex == with_phrase
    assert_no_secret(result.output)

    human = invoke("--home", str(home), "key", "show", "treasury-1")
    assert human.exit_code == 0, human.output
    assert f"with the passphrase:    {with_phrase}" in human.stdout
    assert f"without the passphrase: {W.seed('alice').fingerprint_hex}" in human.stdout


def test_restore_names_the_bad_word_and_stores_nothing(tmp_path, files):
    words = W.mnemonic("alice").split()
    words[2] = "notaword"
    bad = secret_file(tmp_path, "bad.txt", " ".join(words))
    home = tmp_path / "home"
    result = invoke("--home", str(home), "key", "restore", "--keystore", "x", "--mnemonic-file", str(bad),
                    "--password-file", str(files["password"]), "--json")
    assert result.exit_code == 6
    err = json.loads(result.stdout)["error"]
    assert err["message"] == "word 3 is not in the BIP-39 English word list" and err["where"] == str(bad)
    assert not (home / "keystores" / "x.json").exists()
    assert_no_secret(result.output)


def test_restore_without_a_terminal_says_which_file_option_to_pass(tmp_path, files):
    result = invoke("--home", str(tmp_path / "home"), "key", "restore", "--keystore", "x",
                    "--mnemonic-file", str(files["words"]), "--json")
    assert result.exit_code == 2
    err = json.loads(result.stdout)["error"]
    assert err["code"] == "usage" and "--password-file" in err["message"]
    assert not (tmp_path / "home" / "keystores" / "x.json").exists()


def test_restore_refuses_to_overwrite_a_keystore(home, files):
    before = (home / "keystores" / "alice.json").read_bytes()
    result = invoke("--home", str(home), "key", "restore", "--keystore", "alice", "--mnemonic-file",
                    str(files["words"]), "--password-file", str(files["wrong"]), "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["error"]["code"] == "keystore-exists"
    assert (home / "keystores" / "alice.json").read_bytes() == before


# ---------------------------------------------------------------- psbt sign --keystore

def test_sign_with_the_keystore(home, unsigned, files, tmp_path):
    from coldsign.psbt.codec import decode_psbt

    path, psbt = unsigned
    out = tmp_path / "signed.psbt"
    result = invoke("--home", str(home), "psbt", "sign", str(path), "--wallet", "vault", "--keystore", "alice",
                    "--password-file", str(files["password"]), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["out"] == str(out)
    assert doc["seed"] == {"fingerprint": W.seed("alice").fingerprint_hex}  # no passphrase: one fingerprint
    signed = decode_psbt(out.read_bytes())
    assert signed.txid() == psbt.txid()
    assert all(len(signed.input(i).partial_sigs) == 1 for i in range(2))
    assert_no_secret(result.output)


def test_sign_with_a_wrong_password_exits_6_and_writes_nothing(home, unsigned, files, tmp_path):
    out = tmp_path / "signed.psbt"
    result = invoke("--home", str(home), "psbt", "sign", str(unsigned[0]), "--wallet", "vault", "--keystore",
                    "alice", "--password-file", str(files["wrong"]), "--out", str(out), "--json")
    assert result.exit_code == 6
    err = json.loads(result.stdout)["error"]
    assert (err["code"], err["message"]) == ("wrong-password", "wrong password")
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_sign_with_a_damaged_keystore_exits_6_saying_so(home, unsigned, files, tmp_path, damage):
    path = home / "keystores" / "alice.json"
    data = path.read_bytes()
    if damage == "flip":
        doc = json.loads(data)
        doc["ciphertext"] = ("0" if doc["ciphertext"][0] != "0" else "1") + doc["ciphertext"][1:]
        path.write_text(json.dumps(doc, indent=2))
    else:
        path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "signed.psbt"
    result = invoke("--home", str(home), "psbt", "sign", str(unsigned[0]), "--wallet", "vault", "--keystore",
                    "alice", "--password-file", str(files["password"]), "--out", str(out), "--json")
    assert result.exit_code == 6
    err = json.loads(result.stdout)["error"]
    assert err["code"] == "keystore-damaged" and err["where"] == str(path)
    assert err["message"].startswith("the keystore is damaged (") and "backup words" in err["message"]
    assert not out.exists()


def test_sign_refuses_keystore_and_mnemonic_file_together(home, unsigned, files, tmp_path):
    out = tmp_path / "signed.psbt"
    result = invoke("--home", str(home), "psbt", "sign", str(unsigned[0]), "--wallet", "vault", "--keystore",
                    "alice", "--mnemonic-file", str(files["words"]), "--out", str(out), "--json")
    assert result.exit_code == 2
    err = json.loads(result.stdout)["error"]
    assert err["message"] == "--keystore and --mnemonic-file/--passphrase-file both give a seed; pass one"
    alone = invoke("--home", str(home), "psbt", "sign", str(unsigned[0]), "--wallet", "vault",
                   "--password-file", str(files["password"]), "--out", str(out), "--json")
    assert alone.exit_code == 2
    assert "needs --keystore" in json.loads(alone.stdout)["error"]["message"]
    assert not out.exists()


def test_a_refused_psbt_is_refused_before_the_keystore_is_opened(home, files, tmp_path):
    _, psbt = W.honest(payments=[(W.EXTERNAL_SCRIPT, 10_000)], fee_rate=800)
    path = tmp_path / "greedy.psbt"
    path.write_bytes(psbt.serialize())
    out = tmp_path / "signed.psbt"
    # The wrong password would exit 6 if the keystore were opened; the review refuses first.
    result = invoke("--home", str(home), "psbt", "sign", str(path), "--wallet", "vault", "--keystore", "alice",
                    "--password-file", str(files["wrong"]), "--out", str(out), "--json")
    assert result.exit_code == 4, result.output
    assert [d["code"] for d in json.loads(result.stdout)["error"]["details"]] == ["high-fee"]
    assert not out.exists()


def test_restore_and_sign_with_secrets_typed_at_no_echo_prompts(tmp_path, files, unsigned):
    """On a real pseudo-terminal: words typed, passphrase left empty, password typed twice; then the
    keystore password typed to sign. Nothing typed may appear on the screen."""
    from terminal import run_on_terminal

    home = tmp_path / "home"
    result = invoke("--home", str(home), "--network", "regtest", "wallet", "register", "--name", "vault",
                    "--descriptor", W.descriptor("wpkh"), "--mnemonic-file", str(files["words"]))
    assert result.exit_code == 0, result.output
    words, pw = W.mnemonic("alice").encode() + b"\r", PASSWORD.encode() + b"\r"
    status, screen = run_on_terminal(
        [sys.executable, "-c", RUN, "none", "--home", str(home), "key", "restore", "--keystore", "alice"],
        [(b"Mnemonic words", words), (b"passphrase", b"\r"), (b"Keystore password", pw), (b"Repeat", pw)])
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen.decode(errors="replace"))  # without colours
    assert status == 0, text
    assert "master fingerprint: " + W.seed("alice").fingerprint_hex in text
    assert_no_secret(text)

    out = tmp_path / "signed.psbt"
    status, screen = run_on_terminal(
        [sys.executable, "-c", RUN, "none", "--home", str(home), "psbt", "sign", str(unsigned[0]), "--wallet",
         "vault", "--keystore", "alice", "--out", str(out)], [(b"Keystore password", pw)])
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen.decode(errors="replace"))  # without colours
    assert status == 0, text
    assert "Signed" in text and out.exists()
    assert_no_secret(text)


def test_prompts_go_to_the_terminal_and_stdout_holds_only_the_output(home, tmp_path):
    """stdout redirected to a file, as `coldsign key export ... > account.txt` does: the password
    prompt is still seen on the terminal, and the file holds the export alone (likewise --json)."""
    from terminal import run_on_terminal

    pw = PASSWORD.encode() + b"\r"
    for args, out in ((["key", "export", "--keystore", "alice", "--format", "descriptor"], tmp_path / "export.txt"),
                      (["key", "identity", "--keystore", "alice", "--json"], tmp_path / "identity.json")):
        command = " ".join(shlex.quote(a) for a in [sys.executable, "-c", RUN, "none", "--home", str(home),
                                                     "--network", "regtest", *args])
        status, screen = run_on_terminal(["/bin/sh", "-c", f"{command} > {shlex.quote(str(out))}"],
                                         [(b"Keystore password", pw)])
        assert status == 0, screen
        assert b"Keystore password" in screen
        text = out.read_text()
        assert "password" not in text.lower()
        if out.suffix == ".json":
            assert json.loads(text)["fingerprint"]
        else:
            assert text.startswith("wpkh([") and text.count("\n") == 1


# ---------------------------------------------------------------- list, show, delete, passphrase

def test_list_and_show(home, tmp_path):
    bare = W.seed("alice").fingerprint_hex
    result = invoke("--home", str(home), "key", "list", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["folder"] == str(home / "keystores")
    assert [(k["name"], k["fingerprint"], k["has_passphrase"]) for k in doc["keystores"]] == [("alice", bare, False)]
    shown = invoke("--home", str(home), "key", "show", "alice", "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout) == doc["keystores"][0]

    (home / "keystores" / "broken.json").write_text("{")
    listed = json.loads(invoke("--home", str(home), "key", "list", "--json").stdout)["keystores"]
    assert [k["name"] for k in listed] == ["alice", "broken"]
    assert listed[1]["damaged"].startswith("the keystore is damaged (not a complete JSON document)")
    human = invoke("--home", str(home), "key", "list")
    assert human.exit_code == 0 and f"alice  {bare}" in human.stdout and "DAMAGED" in human.stdout

    missing = invoke("--home", str(home), "key", "show", "nobody", "--json")
    assert missing.exit_code == 3
    assert json.loads(missing.stdout)["error"]["message"] == "no keystore named 'nobody'"
    empty = invoke("--home", str(tmp_path / "empty"), "key", "list", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["keystores"] == []


def test_delete_needs_yes_without_a_terminal(home):
    path = home / "keystores" / "alice.json"
    result = invoke("--home", str(home), "key", "delete", "alice", "--json")
    assert result.exit_code == 2
    assert "needs confirmation" in json.loads(result.stdout)["error"]["message"]
    assert path.exists()
    result = invoke("--home", str(home), "key", "delete", "alice", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deleted": "alice", "path": str(path),
                                         "fingerprint": W.seed("alice").fingerprint_hex}
    assert not path.exists()
    again = invoke("--home", str(home), "key", "delete", "alice", "--yes", "--json")
    assert again.exit_code == 3
    assert json.loads(again.stdout)["error"]["code"] == "keystore-not-found"


def test_passphrase_changes_the_keystore_password(home, files, tmp_path):
    new = secret_file(tmp_path, "new.txt", "new password")
    wrong = invoke("--home", str(home), "key", "passphrase", "alice", "--password-file", str(files["wrong"]),
                   "--new-password-file", str(new), "--json")
    assert wrong.exit_code == 6
    assert json.loads(wrong.stdout)["error"]["message"] == "wrong password"

    result = invoke("--home", str(home), "key", "passphrase", "alice", "--password-file", str(files["password"]),
                    "--new-password-file", str(new), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fingerprint"] == W.seed("alice").fingerprint_hex
    assert keystore.open_seed(home, "alice", Secret("new password")).fingerprint_hex == W.seed("alice").fingerprint_hex
    with pytest.raises(Exception) as old:
        keystore.open_seed(home, "alice", Secret(PASSWORD))
    assert str(old.value).endswith("wrong password\n  → type the keystore password again (the BIP-39 "
                                   "passphrase is a different secret)")

    helptext = invoke("key", "passphrase", "--help")
    assert helptext.exit_code == 0 and "password" in helptext.stdout and "Example:" in helptext.stdout


@pytest.mark.parametrize("command", ["restore", "list", "show", "delete", "passphrase"])
def test_every_command_has_help_with_an_example(command):
    result = invoke("key", command, "--help")
    assert result.exit_code == 0 and "Example:" in result.stdout and "--json" in result.stdout


# ---------------------------------------------------------------- leaks

RUN = """
import sys
from coldsign.keys import keystore
keystore.DEFAULT_OPSLIMIT, keystore.DEFAULT_MEMLIMIT = keystore.OPSLIMIT_INTERACTIVE, keystore.MEMLIMIT_INTERACTIVE
inject = sys.argv.pop(1)
def boom(*args, **kwargs):
    raise RuntimeError("injected failure with " + ", ".join(repr(a) for a in args if type(a).__name__ == "SeedKey"))
if inject == "sign":  # after the seed is opened from the keystore
    import coldsign.psbt.sign
    coldsign.psbt.sign.sign = boom
elif inject == "export":  # after the seed is opened, while the account is exported
    import coldsign.keys.export
    coldsign.keys.export.descriptor_export = boom
elif inject == "store":  # after the words and the password are read and sealed, as the file is written
    import coldsign.keys.keystore
    coldsign.keys.keystore._write = boom
from coldsign.cli.main import main
sys.exit(main())
"""


def run_coldsign(inject: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", RUN, inject, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env, timeout=120)


def test_nothing_secret_leaks_with_debug_and_injected_failures(home, unsigned, files, tmp_path):
    failed_store = run_coldsign("store", "--home", str(home), "--debug", "key", "restore", "--keystore", "again",
                                "--mnemonic-file", str(files["words"]), "--password-file", str(files["password"]))
    assert failed_store.returncode != 0 and "RuntimeError: injected failure" in failed_store.stderr
    assert not (home / "keystores" / "again.json").exists()

    out = tmp_path / "signed.psbt"
    failed_sign = run_coldsign("sign", "--home", str(home), "--debug", "psbt", "sign", str(unsigned[0]),
                               "--wallet", "vault", "--keystore", "alice", "--password-file",
                               str(files["password"]), "--out", str(out))
    assert failed_sign.returncode != 0
    assert f"injected failure with SeedKey(fingerprint={W.seed('alice').fingerprint_hex})" in failed_sign.stderr
    assert not out.exists()

    signed = run_coldsign("none", "--home", str(home), "--debug", "psbt", "sign", str(unsigned[0]), "--wallet",
                          "vault", "--keystore", "alice", "--password-file", str(files["password"]),
                          "--out", str(out), "--json")
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["out"] == str(out)

    failed_export = run_coldsign("export", "--home", str(home), "--network", "regtest", "--debug", "key", "export",
                                 "--keystore", "alice", "--password-file", str(files["password"]),
                                 "--format", "descriptor")
    assert failed_export.returncode != 0 and "RuntimeError: injected failure" in failed_export.stderr
    exported = run_coldsign("none", "--home", str(home), "--network", "regtest", "--debug", "key", "export",
                            "--keystore", "alice", "--password-file", str(files["password"]), "--format", "json")
    assert exported.returncode == 0 and json.loads(exported.stdout)["xfp"] == W.seed("alice").fingerprint_hex.upper()

    for run in (failed_store, failed_sign, signed, failed_export, exported):
        assert_no_secret(run.stdout)
        assert_no_secret(run.stderr)
    for path in home.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_bytes().decode("latin-1")
        if path.parent.name == "keystores":
            doc = json.loads(text)
            assert set(doc) <= keystore._FIELDS | keystore._OPTIONAL_FIELDS
            doc.pop("ciphertext")
            text = json.dumps(doc)
        assert_no_secret(text)
