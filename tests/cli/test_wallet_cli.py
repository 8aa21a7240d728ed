"""`coldsign wallet register | list | show | address` as users run them, exit codes and JSON.

Fixture: the 2-of-3 regtest `wsh(sortedmulti)` vault of custodians A "abandon ... about",
B "legal winner ... yellow", C "letter advice ... above" (BIP-48 accounts m/48h/1h/0h/2h);
custodian B's mnemonic sits in a file as the signer would read it. Seed D "zoo ... wrong" holds
none of the vault's keys.
"""

import json

import pytest
from embit import bip32, bip39
from embit.descriptor import Descriptor
from embit.networks import NETWORKS
from typer.testing import CliRunner

from coldsign.cli.main import app

ABANDON = "abandon " * 11 + "about"
LEGAL = "legal winner thank year wave sausage worth useful legal winner thank yellow"
LETTER = "letter advice cage absurd amount doctor acoustic avoid letter advice cage above"
ZOO = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong"


def key_text(mnemonic: str, path: str = "m/48h/1h/0h/2h", branches: str = "/<0;1>/*") -> str:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic))
    xpub = root.derive(path).to_public().to_base58(NETWORKS["test"]["xpub"])
    return f"[{root.my_fingerprint.hex()}{path[1:]}]{xpub}{branches}"


def vault(branches: str = "/<0;1>/*") -> str:
    return f"wsh(sortedmulti(2,{','.join(key_text(m, branches=branches) for m in (ABANDON, LEGAL, LETTER))}))"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def run(runner, home, *args, network="regtest"):
    base = ["--home", str(home)] + (["--network", network] if network else [])
    return runner.invoke(app, base + list(args))


def one_json(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_register_with_seed_then_list_show_address(runner, home, tmp_path):
    words = tmp_path / "b.txt"
    words.write_text(LEGAL + "\n")
    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault(),
                 "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert doc["registered"] is True and doc["policy"] == "2 of 3" and doc["kind"] == "wsh-sortedmulti"
    assert doc["seed_key"]["position"] == 2 and doc["seed_key"]["path"] == "m/48h/1h/0h/2h"
    assert doc["network"] == "regtest" and doc["descriptor"].split("#")[1]
    reference = Descriptor.from_string(vault())
    assert doc["first_address"] == reference.derive(0, branch_index=0).address(NETWORKS["regtest"])
    assert LEGAL not in result.output
    assert (home / "wallets" / "vault.json").is_file()

    listed = one_json(run(runner, home, "wallet", "list", "--json", network=None))
    assert [w["name"] for w in listed["wallets"]] == ["vault"]
    assert listed["wallets"][0]["policy"] == "2 of 3" and len(listed["wallets"][0]["fingerprints"]) == 3

    shown = one_json(run(runner, home, "wallet", "show", "vault", "--json", network=None))
    assert shown["descriptor"] == doc["descriptor"] and len(shown["keys"]) == 3

    address = run(runner, home, "wallet", "address", "vault", "7", "--change", "--json", network=None)
    assert address.exit_code == 0, address.output
    adoc = one_json(address)
    derived = reference.derive(7, branch_index=1)
    assert adoc["address"] == derived.address(NETWORKS["regtest"])
    assert adoc["witness_script"] == derived.witness_script().data.hex()
    assert adoc["change"] is True and adoc["keys"][0]["path"] == "m/48h/1h/0h/2h/1/7"


def test_human_views(runner, home):
    assert run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault()).exit_code == 0
    shown = run(runner, home, "wallet", "show", "vault", network=None)
    assert shown.exit_code == 0 and "2 of 3" in shown.stdout and "73c5da0a" in shown.stdout
    assert "m/48h/1h/0h/2h" in shown.stdout
    listed = run(runner, home, "wallet", "list", network=None)
    assert "vault" in listed.stdout and "regtest" in listed.stdout
    address = run(runner, home, "wallet", "address", "vault", "0", network=None)
    assert address.exit_code == 0 and "bcrt1q" in address.stdout


def test_register_split_descriptors_and_idempotent(runner, home):
    first = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault("/0/*"),
                "--change-descriptor", vault("/1/*"), "--json")
    assert first.exit_code == 0, first.output
    again = one_json(run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault(), "--json"))
    assert again["registered"] is False and again["descriptor"] == one_json(first)["descriptor"]


def test_wrong_checksum_exit_3_names_expected(runner, home):
    from coldsign.wallet.scriptexpr import descriptor_checksum

    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault() + "#aaaaaaaa",
                 "--json")
    assert result.exit_code == 3
    error = one_json(result)["error"]
    assert error["code"] == "descriptor"
    assert error["message"] == f"descriptor checksum mismatch: got #aaaaaaaa, expected #{descriptor_checksum(vault())}"


def test_seed_not_in_wallet_exit_4(runner, home, tmp_path):
    words = tmp_path / "d.txt"
    words.write_text(ZOO)
    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault(),
                 "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 4
    assert one_json(result)["error"]["code"] == "seed-not-in-wallet"
    assert not (home / "wallets" / "vault.json").exists()


def test_name_taken_exit_4(runner, home):
    assert run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault()).exit_code == 0
    other = f"wpkh({key_text(ABANDON, 'm/84h/1h/0h')})"
    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", other, "--json")
    assert result.exit_code == 4 and one_json(result)["error"]["code"] == "wallet-exists"


def test_mainnet_keys_on_regtest_exit_3(runner, home):
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(ABANDON))
    xpub = root.derive("m/84h/0h/0h").to_public().to_base58()
    result = run(runner, home, "wallet", "register", "--name", "w", "--json",
                 "--descriptor", f"wpkh([73c5da0a/84h/0h/0h]{xpub}/<0;1>/*)")
    assert result.exit_code == 3
    assert one_json(result)["error"]["message"] == "the key is an xpub (main) key but the network is regtest"


def test_register_needs_network(runner, home):
    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault(), network=None)
    assert result.exit_code == 2
    assert "no network given" in result.output


def test_unknown_wallet_exit_3(runner, home):
    result = run(runner, home, "wallet", "show", "nope", "--json", network=None)
    assert result.exit_code == 3
    error = one_json(result)["error"]
    assert error["code"] == "not-found" and str(home / "wallets") in error["message"]
    assert run(runner, home, "wallet", "address", "nope", "0", network=None).exit_code == 3


def test_empty_list(runner, home):
    assert one_json(run(runner, home, "wallet", "list", "--json", network=None)) == {"wallets": []}


@pytest.mark.parametrize("command", ["register", "list", "show", "address"])
def test_help_has_example(runner, command):
    result = runner.invoke(app, ["wallet", command, "--help"])
    assert result.exit_code == 0 and "Example: coldsign" in result.stdout


def test_show_prints_every_key_origin_of_the_descriptor(tmp_path):
    """Key origins look like Rich markup ("[c8e3b3d3/48h/1h/0h/2h]"); the human view must print
    them as they are, or a custodian would compare a descriptor with keys missing their origin."""
    import walletkit as W

    home = tmp_path / "home"
    descriptor = W.descriptor("wsh-sortedmulti")
    registered = CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "wallet", "register",
                                          "--name", "vault", "--descriptor", descriptor])
    assert registered.exit_code == 0, registered.output
    shown = CliRunner().invoke(app, ["--home", str(home), "wallet", "show", "vault"])
    flat = "".join(shown.stdout.split())
    for name in W.COSIGNERS:
        origin = W.key_expression(name, "wsh-sortedmulti").split("]")[0] + "]"
        assert origin in flat, origin


# ---------------------------------------------------------------- setup files and exports
# walletkit's 2-of-3 regtest vault (alice, bob, carol at m/48h/1h/0h/2h, wsh(sortedmulti)): bob is this
# signer; his words sit in a file, or in keystore "bob" (password "correct horse", fast Argon2id).

def _kit():
    import walletkit as W

    return W


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _bsms_record(token=None):
    from coldsign.wallet import bsms

    return bsms.descriptor_record(_kit().wallet("wsh-sortedmulti"), **({"token": token} if token else {}))


@pytest.mark.parametrize("fmt", ["bsms", "coldcard", "descriptor"])
def test_register_from_file_shows_first_address_m_n_and_key_position(runner, home, tmp_path, fmt):
    from coldsign.wallet import multisig_file

    W = _kit()
    wallet = W.wallet("wsh-sortedmulti")
    text = {"bsms": _bsms_record(), "coldcard": multisig_file.write(wallet, "vault"),
            "descriptor": "# the vault\n" + wallet.canonical() + "\n"}[fmt]
    words = W.write_mnemonic(tmp_path, "bob")
    result = run(runner, home, "wallet", "register", "--name", "vault", "--file", str(_write(tmp_path, "v.txt", text)),
                 "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert doc["source"] == fmt
    assert doc["first_address"] == wallet.address(0, 0)
    assert doc["threshold"] == 2 and len(doc["keys"]) == 3 and doc["policy"] == "2 of 3"
    assert doc["seed_key"]["position"] == 2 and doc["seed_key"]["fingerprint"] == W.seed("bob").fingerprint_hex
    assert doc["descriptor"] == wallet.canonical()
    if fmt == "bsms":
        assert doc["bsms"]["first_address_checked"] is True and doc["bsms"]["path_restrictions"] == "/0/*,/1/*"
    if fmt == "coldcard":
        assert doc["file_name"] == "vault"


def test_register_bsms_human_view_with_keystore(runner, home, tmp_path, fast_kdf):
    from coldsign.keys import keystore
    from coldsign.keys.secret import Secret

    W = _kit()
    keystore.create(home, "bob", Secret(W.mnemonic("bob")), Secret("correct horse"))
    password = _write(tmp_path, "pw.txt", "correct horse\n")
    record = _write(tmp_path, "vault.bsms", _bsms_record())
    result = run(runner, home, "wallet", "register", "--name", "vault", "--file", str(record),
                 "--keystore", "bob", "--password-file", str(password))
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    assert "this seed holds key 2 of 3" in flat
    assert "M = 2 signatures of N = 3 keys" in flat
    assert W.wallet("wsh-sortedmulti").address(0, 0) in flat
    assert "BSMS (BIP-129) descriptor record" in flat and "first address matches" in flat


def test_register_bsms_first_address_mismatch_exit_4_writes_nothing(runner, home, tmp_path):
    W = _kit()
    wallet = W.wallet("wsh-sortedmulti")
    lines = _bsms_record().splitlines()
    lines[3] = wallet.address(0, 5)
    result = run(runner, home, "wallet", "register", "--name", "vault", "--file",
                 str(_write(tmp_path, "v.bsms", "\n".join(lines))), "--json")
    assert result.exit_code == 4
    error = one_json(result)["error"]
    assert error["code"] == "first-address-mismatch"
    assert wallet.address(0, 5) in error["message"] and wallet.address(0, 0) in error["message"]
    assert not (home / "wallets" / "vault.json").exists()


def test_register_encrypted_bsms_needs_the_token(runner, home, tmp_path):
    token = "11907592390080907703"  # decimal, as BIP-129 recommends showing it
    from coldsign.wallet import bsms

    record = _write(tmp_path, "vault.dat", _bsms_record(token=bsms.token_from_decimal(token)))
    without = run(runner, home, "wallet", "register", "--name", "vault", "--file", str(record), "--json")
    assert without.exit_code == 3
    assert one_json(without)["error"]["message"] == ("this BSMS descriptor record is encrypted; "
                                                     "its TOKEN is needed to read it")
    wrong = run(runner, home, "wallet", "register", "--name", "vault", "--file", str(record),
                "--token-file", str(_write(tmp_path, "wrong.txt", "a54044308ceac9b6")), "--json")
    assert wrong.exit_code == 5 and one_json(wrong)["error"]["code"] == "bsms-mac-mismatch"
    right = run(runner, home, "wallet", "register", "--name", "vault", "--file", str(record),
                "--token-file", str(_write(tmp_path, "token.txt", token + "\n")), "--json")
    assert right.exit_code == 0, right.output
    assert one_json(right)["source"] == "bsms"


def test_register_coldcard_p2sh_p2wsh_refused_exit_3_naming_file_and_line(runner, home, tmp_path):
    from coldsign.wallet import multisig_file

    text = multisig_file.write(_kit().wallet("wsh-sortedmulti"), "vault").replace("Format: P2WSH", "Format: P2SH-P2WSH")
    path = _write(tmp_path, "cc.txt", text)
    result = run(runner, home, "wallet", "register", "--name", "vault", "--file", str(path), "--json")
    assert result.exit_code == 3
    error = one_json(result)["error"]
    assert error["where"] == str(path)
    assert error["message"].startswith("line 6: Format P2SH-P2WSH is not supported")


@pytest.mark.parametrize("args,message", [
    ([], "give the wallet as --descriptor TEXT or --file FILE (one of them)"),
    (["--descriptor", "x", "--file", "f"], "give the wallet as --descriptor TEXT or --file FILE (one of them)"),
    (["--file", "f", "--change-descriptor", "c"], "--change-descriptor goes with --descriptor"),
    (["--descriptor", "x", "--token-file", "t"], "--token-file is for an encrypted BSMS record given with --file"),
])
def test_register_usage_errors(runner, home, args, message):
    result = run(runner, home, "wallet", "register", "--name", "vault", *args, "--json")
    assert result.exit_code == 2
    assert one_json(result)["error"]["message"] == message


def test_register_descriptor_file_with_receive_and_change_lines(runner, home, tmp_path):
    text = vault("/0/*") + "\n" + vault("/1/*") + "\n"
    result = run(runner, home, "wallet", "register", "--name", "vault", "--file",
                 str(_write(tmp_path, "d.txt", text)), "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert doc["source"] == "descriptor" and doc["descriptor"].startswith("wsh(sortedmulti(2,")


@pytest.mark.parametrize("fmt", ["descriptor", "bsms", "coldcard"])
def test_export_then_register_on_another_signer_round_trips(runner, home, tmp_path, fmt):
    W = _kit()
    descriptor = W.descriptor("wsh-sortedmulti")
    assert run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", descriptor).exit_code == 0
    out = tmp_path / f"vault.{fmt}"
    exported = run(runner, home, "wallet", "export", "vault", "--format", fmt, "--out", str(out), "--json",
                   network=None)
    assert exported.exit_code == 0, exported.output
    doc = one_json(exported)
    import hashlib

    assert doc["out"] == str(out) and doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert doc["format"] == fmt and doc["first_address"] == W.wallet("wsh-sortedmulti").address(0, 0)
    # another signer registers it from the exported file (in one home a wallet has one name)
    again = run(runner, tmp_path / "signer-2", "wallet", "register", "--name", "copy", "--file", str(out), "--json")
    assert again.exit_code == 0, again.output
    copy = one_json(again)
    assert copy["source"] == fmt
    original = one_json(run(runner, home, "wallet", "show", "vault", "--json", network=None))
    assert copy["descriptor"] == original["descriptor"]


def test_export_to_stdout_and_json_text(runner, home):
    W = _kit()
    assert run(runner, home, "wallet", "register", "--name", "vault", "--descriptor",
               W.descriptor("wsh-sortedmulti")).exit_code == 0
    plain = run(runner, home, "wallet", "export", "vault", "--format", "coldcard", network=None)
    assert plain.exit_code == 0 and plain.stdout.startswith("# Coldcard multisig setup file")
    assert "Policy: 2 of 3" in plain.stdout
    doc = one_json(run(runner, home, "wallet", "export", "vault", "--format", "descriptor", "--json", network=None))
    assert doc["text"] == W.wallet("wsh-sortedmulti").canonical() + "\n" and "out" not in doc


def test_export_encrypted_bsms_round_trip(runner, home, tmp_path):
    W = _kit()
    assert run(runner, home, "wallet", "register", "--name", "vault", "--descriptor",
               W.descriptor("wsh-sortedmulti")).exit_code == 0
    token = _write(tmp_path, "token.txt", "0102030405060708\n")
    out = tmp_path / "vault.dat"
    exported = run(runner, home, "wallet", "export", "vault", "--format", "bsms", "--token-file", str(token),
                   "--out", str(out), "--json", network=None)
    assert exported.exit_code == 0, exported.output
    assert one_json(exported)["encrypted"] is True and "BSMS" not in out.read_text()
    again = run(runner, tmp_path / "signer-2", "wallet", "register", "--name", "copy", "--file", str(out),
                "--token-file", str(token), "--json")
    assert again.exit_code == 0, again.output


def test_export_coldcard_of_single_key_wallet_exit_3(runner, home):
    W = _kit()
    assert run(runner, home, "wallet", "register", "--name", "solo", "--descriptor", W.descriptor("wpkh")).exit_code == 0
    result = run(runner, home, "wallet", "export", "solo", "--format", "coldcard", "--json", network=None)
    assert result.exit_code == 3
    assert one_json(result)["error"]["message"] == ("a Coldcard multisig file holds wsh(sortedmulti) wallets; "
                                                    "this one is wpkh")


def test_export_unknown_format_and_wallet(runner, home):
    result = run(runner, home, "wallet", "export", "vault", "--format", "pdf", "--json", network=None)
    assert result.exit_code == 2 and one_json(result)["error"]["message"] == "unknown export format 'pdf'"
    missing = run(runner, home, "wallet", "export", "vault", "--json", network=None)
    assert missing.exit_code == 3 and one_json(missing)["error"]["code"] == "not-found"


def test_export_help_has_example(runner):
    result = runner.invoke(app, ["wallet", "export", "--help"])
    assert result.exit_code == 0 and "Example: coldsign wallet export" in result.stdout


# ---------------------------------------------------------------- hostile setup files
# Coldcard's generic JSON carries each account's first receive address ("first"); alice's wpkh
# account (m/84h/1h/0h) is the wallet, bob's is the "other wallet" a tampered file points at.

def _coldcard_json(name="alice"):
    from coldsign.keys.export import coldcard_json
    from coldsign.network import Network

    return coldcard_json(_kit().seed(name), Network.REGTEST)


def test_register_coldcard_json_checks_its_first_address(runner, home, tmp_path):
    doc = _coldcard_json()
    result = run(runner, home, "wallet", "register", "--name", "hot", "--file",
                 str(_write(tmp_path, "cc.json", json.dumps(doc))), "--json")
    assert result.exit_code == 0, result.output
    shown = one_json(result)
    assert shown["source"] == "coldcard-json" and shown["first_address"] == doc["bip84"]["first"]


@pytest.mark.parametrize("tamper", ["first", "xpub"])
def test_register_coldcard_json_first_address_mismatch_exit_4_writes_nothing(runner, home, tmp_path, tamper):
    doc, other = _coldcard_json("alice"), _coldcard_json("bob")
    alice_first, bob_first = doc["bip84"]["first"], other["bip84"]["first"]
    doc["bip84"][tamper] = other["bip84"][tamper]  # the address of another wallet, or another wallet's key
    result = run(runner, home, "wallet", "register", "--name", "hot", "--file",
                 str(_write(tmp_path, "cc.json", json.dumps(doc))), "--json")
    assert result.exit_code == 4, result.output
    error = one_json(result)["error"]
    assert error["code"] == "first-address-mismatch"
    says, derives = (bob_first, alice_first) if tamper == "first" else (alice_first, bob_first)
    assert error["message"] == f"first address mismatch: the bip84 account says {says}, its xpub derives {derives}"
    assert not (home / "wallets" / "hot.json").exists()


def test_register_coldcard_json_with_descriptor_text_in_its_fields_exit_3(runner, home, tmp_path):
    doc = _coldcard_json()
    doc["bip84"]["xpub"] += ")"
    result = run(runner, home, "wallet", "register", "--name", "hot", "--file",
                 str(_write(tmp_path, "cc.json", json.dumps(doc))), "--json")
    assert result.exit_code == 3
    assert one_json(result)["error"]["message"] == "the bip84 xpub is not one base58 extended key"


def test_register_deeply_nested_json_file_is_exit_3_not_a_crash(runner, home, tmp_path):
    nested = '{"a": ' + "[" * 30_000 + "]" * 30_000 + "}"
    result = run(runner, home, "wallet", "register", "--name", "hot", "--file",
                 str(_write(tmp_path, "deep.json", nested)), "--json")
    assert result.exit_code == 3, result.output
    error = one_json(result)["error"]
    assert error["message"] == "not valid JSON: nested too deeply" and error["where"].endswith("deep.json")


@pytest.mark.parametrize("token", ["\u00b2", "\u00b9\u00b2\u00b3"])
def test_a_token_file_of_superscript_digits_is_exit_3_not_a_crash(runner, home, tmp_path, token):
    """"²".isdigit() is True but int("²") raises ValueError: the token used to crash (exit 70)."""
    run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault())
    result = run(runner, home, "wallet", "export", "vault", "--format", "bsms", "--token-file",
                 str(_write(tmp_path, "token.txt", token + "\n")), "--json")
    assert result.exit_code == 3, result.output
    assert one_json(result)["error"]["message"] == "a decimal BSMS TOKEN is a number of at most 39 digits"


def test_register_plain_bsms_with_a_token_file_exit_5_writes_nothing(runner, home, tmp_path):
    """The custodian holds the session TOKEN, so the record must come encrypted under it: a plain one
    swapped in (e.g. an attacker's wallet holding this signer's key) is not authenticated."""
    result = run(runner, home, "wallet", "register", "--name", "vault", "--file",
                 str(_write(tmp_path, "vault.bsms", _bsms_record())),
                 "--token-file", str(_write(tmp_path, "token.txt", "a54044308ceac9b6\n")), "--json")
    assert result.exit_code == 5, result.output
    assert one_json(result)["error"]["code"] == "bsms-not-encrypted"
    assert not (home / "wallets" / "vault.json").exists()
