"""`coldsign key export` as users run it, on alice's seed (tests/walletkit.py: BIP-39 words of
entropy 0x01 * 16, no passphrase) on regtest, from her mnemonic file or her keystore "alice"
(password "correct horse", Argon2id at INTERACTIVE limits). Every exported xpub is checked
against embit's own BIP-32 derivation from the mnemonic; the UR frames written as PNG files are
read back through the scanning path (coldsign.qr.scan + the zxing decoder + the Assembler) to
the same CBOR."""

from __future__ import annotations

import json

import pytest
from embit import bip32, bip39
from embit.networks import NETWORKS
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.network import Network
from coldsign.qr import ur
from coldsign.wallet import urtypes_decode as D
from coldsign.wallet.descriptor import WalletDescriptor

R = Network.REGTEST


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def embit_xpub(path: str, net: str = "regtest") -> str:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(W.mnemonic("alice")))
    return root.derive(path).to_public().to_base58(NETWORKS[net]["xpub"])


@pytest.fixture()
def words(tmp_path):
    return W.write_mnemonic(tmp_path, "alice")


def export(home, words, *args: str, network: str = "regtest"):
    return invoke("--home", str(home), "--network", network, "--json", "key", "export",
                  "--mnemonic-file", str(words), *args)


@pytest.mark.parametrize("script_type,path", [("wpkh", "m/84h/1h/0h"), ("sh-wpkh", "m/49h/1h/0h"),
                                              ("tr", "m/86h/1h/0h")])
def test_descriptor_per_single_sig_type(tmp_path, words, script_type, path):
    result = export(tmp_path / "home", words, "--format", "descriptor", "--script-type", script_type)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    fingerprint = W.seed("alice").fingerprint_hex
    assert doc["xpub"] == embit_xpub(path) and doc["path"] == path and doc["fingerprint"] == fingerprint
    assert f"[{fingerprint}/{path[2:]}]{doc['xpub']}/<0;1>/*" in doc["descriptor"]
    assert WalletDescriptor.parse(doc["descriptor"], R).address(0, 0) == W.wallet(script_type).address(0, 0)


def test_descriptor_human_output_is_the_export_on_stdout(tmp_path, words):
    result = invoke("--home", str(tmp_path / "home"), "--network", "regtest", "key", "export",
                    "--mnemonic-file", str(words), "--format", "descriptor", "--script-type", "wsh-multi",
                    "--account", "3")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"[{W.seed('alice').fingerprint_hex}/48h/1h/3h/2h]{embit_xpub('m/48h/1h/3h/2h')}\n"
    assert "cosigner key for sortedmulti() at m/48h/1h/3h/2h" in result.stderr


def test_path_override_and_out_file(tmp_path, words):
    out = tmp_path / "export.txt"
    result = export(tmp_path / "home", words, "--format", "descriptor", "--path", "m/84h/1h/9h", "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["xpub"] == embit_xpub("m/84h/1h/9h") and doc["out"] == str(out)
    assert out.read_text() == doc["descriptor"] + "\n"


def test_ur_crypto_output_single_part_decodes_to_the_descriptor(tmp_path, words):
    result = export(tmp_path / "home", words, "--format", "ur", "--script-type", "tr")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["ur"]) == 1 and doc["ur"][0].startswith("UR:CRYPTO-OUTPUT/")
    ur_type, cbor = ur.decode_single(doc["ur"][0], ur.REGISTRY_TYPES)
    assert cbor.hex() == doc["cbor_hex"]
    assert D.decode_output(cbor, R).descriptor == doc["descriptor"]
    assert doc["xpub"] == embit_xpub("m/86h/1h/0h")


def test_ur_crypto_account_frames_scan_back_to_the_same_cbor(tmp_path, words):
    from coldsign.qr.decoders import make_decoder
    from coldsign.qr.scan import ImageFiles, receive
    from coldsign.qr.transport import Assembler

    frames = tmp_path / "frames"
    result = export(tmp_path / "home", words, "--format", "ur", "--ur-type", "crypto-account",
                    "--frames-dir", str(frames), "--max-fragment", "100")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["ur"]) == 5 and doc["ur"][0].startswith("UR:CRYPTO-ACCOUNT/1-5/")
    assert doc["frames"] == len(doc["ur"]) == len(list(frames.glob("frame-*.png")))
    assert (frames / "frames.txt").read_text().split() == doc["ur"]
    assembler = Assembler(ur_types=ur.SUPPORTED_TYPES + ur.REGISTRY_TYPES)
    receipt = receive(ImageFiles(str(frames / "frame-*.png")), assembler, make_decoder())
    assert receipt.message.type == "crypto-account"
    assert receipt.message.data.hex() == doc["cbor_hex"]
    account = D.decode_account(receipt.message.data, R)
    assert [o.keys[0].xpub() for o in account.outputs] == [
        embit_xpub(p) for p in ("m/49h/1h/0h", "m/84h/1h/0h", "m/48h/1h/0h/2h", "m/86h/1h/0h")]


def test_ur_shown_as_animated_qr_on_the_terminal(tmp_path, words):
    """--qr animates the UR on stderr (stdout keeps the export): one cycle of the same 5 parts that
    --frames-dir writes (those are scanned back above)."""
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "--network", "regtest", "--json", "key",
                                      "export", "--mnemonic-file", str(words), "--format", "ur", "--ur-type",
                                      "crypto-account", "--max-fragment", "100", "--qr", "--cycles", "1"],
                                env={"COLUMNS": "240", "LINES": "140"})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    shown = doc["qr_shown"]
    assert (shown["format"], shown["type"], shown["cycle_frames"], shown["frames_shown"], shown["stopped_by"]) == \
        ("ur", "crypto-account", len(doc["ur"]), 5, "cycles")
    result = export(tmp_path / "home", words, "--format", "descriptor", "--qr")
    assert result.exit_code == 2 and "--qr go with --format ur" in result.output
    result = export(tmp_path / "home", words, "--format", "ur", "--cycles", "2")
    assert result.exit_code == 2 and "--cycles goes with --qr" in result.output


def test_a_plain_assembler_still_refuses_registry_types(tmp_path, words):
    from coldsign.qr.errors import QRDecodeError
    from coldsign.qr.transport import Assembler

    doc = json.loads(export(tmp_path / "home", words, "--format", "ur").stdout)
    with pytest.raises(QRDecodeError) as info:
        Assembler().add(doc["ur"][0])
    assert info.value.message == ("UR type 'crypto-output' is not supported "
                                  "(expected one of crypto-psbt, psbt, bytes)")


def test_coldcard_json_format(tmp_path, words):
    result = export(tmp_path / "home", words, "--format", "json", "--account", "1")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["export"]["bip84"]["xpub"] == embit_xpub("m/84h/1h/1h")
    assert doc["export"]["bip48_2"]["deriv"] == "m/48'/1'/1'/2'" and doc["export"]["chain"] == "XRT"
    human = invoke("--home", str(tmp_path / "home"), "--network", "regtest", "key", "export",
                   "--mnemonic-file", str(words), "--format", "json", "--account", "1")
    assert json.loads(human.stdout) == doc["export"]


def test_bsms_signer_record(tmp_path, words):
    result = export(tmp_path / "home", words, "--format", "bsms", "--description", "alice vault")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    lines = doc["bsms"].split("\n")
    assert lines[:3] == ["BSMS 1.0", "00", f"[{W.seed('alice').fingerprint_hex}/48h/1h/0h/2h]"
                                            f"{embit_xpub('m/48h/1h/0h/2h')}"]
    assert "alice vault" in lines


def test_keystore_source_and_wrong_password(tmp_path, words, fast_kdf):
    home = tmp_path / "home"
    password = tmp_path / "pw.txt"
    password.write_text("correct horse\n")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("battery staple\n")
    assert invoke("--home", str(home), "key", "restore", "--keystore", "alice", "--mnemonic-file", str(words),
                  "--password-file", str(password), "--json").exit_code == 0
    ok = invoke("--home", str(home), "--network", "regtest", "--json", "key", "export", "--keystore", "alice",
                "--password-file", str(password), "--format", "descriptor")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["xpub"] == embit_xpub("m/84h/1h/0h")
    bad = invoke("--home", str(home), "--network", "regtest", "--json", "key", "export", "--keystore", "alice",
                 "--password-file", str(wrong), "--format", "descriptor")
    assert bad.exit_code == 6
    assert json.loads(bad.stdout)["error"]["exit"] == 6


@pytest.mark.parametrize("args,message", [
    (("--format", "descriptor", "--path", "m/84h/1/0h"), "--path step 2 ('1') is not hardened"),
    (("--format", "descriptor", "--path", "m/84h/0h/0h"), "--path coin type 0 is not regtest's (1)"),
    (("--format", "json", "--path", "m/84h/1h/0h"), "--format json exports every standard script type"),
    (("--format", "bsms", "--script-type", "wpkh"), "a BSMS signer record is for multisig"),
    (("--format", "descriptor", "--frames-dir", "x"), "--ur-type, --frames-dir, --max-fragment and --qr go"),
])
def test_usage_errors_exit_2(tmp_path, words, args, message):
    result = export(tmp_path / "home", words, *args)
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["message"].startswith(message)


def test_account_range_and_network_are_required(tmp_path, words):
    result = invoke("--home", str(tmp_path), "--network", "regtest", "key", "export", "--mnemonic-file",
                    str(words), "--format", "descriptor", "--account", "-1")
    assert result.exit_code == 2
    result = invoke("--home", str(tmp_path), "--json", "key", "export", "--mnemonic-file", str(words),
                    "--format", "descriptor")
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["message"] == "no network given"


def test_help_has_an_example():
    result = invoke("key", "export", "--help")
    assert result.exit_code == 0 and "Example: coldsign" in result.stdout


def test_bsms_signer_record_encrypted_with_a_token_file(tmp_path, words):
    """BIP-129's decimal token form, from a file (a token is never an option value): the record comes
    out encrypted, and decrypting it with the same token gives a record whose signature verifies."""
    from coldsign.wallet import bsms

    token = tmp_path / "token.txt"
    token.write_text("12345678901234567890\n")
    result = export(tmp_path / "home", words, "--format", "bsms", "--token-file", str(token))
    assert result.exit_code == 0, result.output
    encrypted = json.loads(result.stdout)["bsms"]
    assert not encrypted.startswith("BSMS")
    record = bsms.parse_signer_record(encrypted, token=bsms.token_from_decimal("12345678901234567890"))
    assert record.key.startswith(f"[{W.seed('alice').fingerprint_hex}/48h/1h/0h/2h]")
    refused = export(tmp_path / "home", words, "--format", "descriptor", "--token-file", str(token))
    assert refused.exit_code == 2 and "--token-file and --description go with --format bsms" in refused.output


def test_with_a_passphrase_both_fingerprints_are_shown(tmp_path, words):
    phrase = tmp_path / "passphrase.txt"
    phrase.write_text("TREZOR\n")
    result = export(tmp_path / "home", words, "--format", "descriptor", "--passphrase-file", str(phrase))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    seed = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(W.mnemonic("alice"), "TREZOR"))
    assert doc["fingerprint"] == seed.child(0).fingerprint.hex()
    assert doc["fingerprint_without_passphrase"] == W.seed("alice").fingerprint_hex
    human = invoke("--home", str(tmp_path / "home"), "--network", "regtest", "key", "export", "--mnemonic-file",
                   str(words), "--passphrase-file", str(phrase), "--format", "descriptor")
    assert (f"master fingerprint {doc['fingerprint']} (with the BIP-39 passphrase; "
            f"{W.seed('alice').fingerprint_hex} without it)") in " ".join(human.stderr.split())
