"""`coldsign psbt ...` as users run it: encodings, the inspect JSON contract, exit codes.

The wallet is alice's wpkh account (tests/walletkit.py), registered in a fresh home folder (the
`alice` fixture, tests/cli/conftest.py); the PSBT (walletkit.honest) spends two 100,000-sat coins at receive 0/0 and 0/1, pays 150,000 sat to
an external P2WPKH and sends the rest less a 2 sat/vB fee to change 1/0.
"""

from __future__ import annotations

import base64
import json

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def unsigned(tmp_path):
    _, psbt = W.honest()
    path = tmp_path / "unsigned.psbt"
    path.write_bytes(psbt.serialize())
    return path, psbt


@pytest.mark.parametrize("encoding", ["binary", "base64", "hex"])
def test_inspect_reads_every_encoding_and_keeps_the_contract(alice, unsigned, tmp_path, encoding):
    home, _ = alice
    path, psbt = unsigned
    raw = psbt.serialize()
    text = {"binary": raw, "base64": base64.b64encode(raw) + b"\n", "hex": raw.hex().encode() + b"\n"}[encoding]
    given = tmp_path / f"in.{encoding}"
    given.write_bytes(text)
    result = invoke("--home", str(home), "psbt", "inspect", str(given), "--wallet", "vault", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) >= {"txid", "psbt_version", "inputs", "outputs", "fee_sat", "vsize", "fee_rate_sat_vb", "warnings"}
    assert doc["txid"] == psbt.txid() and doc["psbt_version"] == 0
    for item in doc["inputs"]:
        assert set(item) >= {"prevout", "amount_sat", "script_type", "amount_verified", "sighash", "signatures",
                             "required"}
        assert (item["amount_sat"], item["script_type"], item["amount_verified"], item["sighash"],
                item["signatures"], item["required"]) == (100_000, "p2wpkh", True, "DEFAULT", 0, 1)
    assert [(o["address"], o["amount_sat"], o["change"]) for o in doc["outputs"]][0] == \
        ("bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ew", 150_000, False)
    change = doc["outputs"][1]
    assert change["change"] is True and change["address"] == W.wallet("wpkh").address(1, 0)
    assert doc["fee_sat"] == 200_000 - 150_000 - change["amount_sat"]
    # 2 inputs of 68 vB, 2 P2WPKH outputs of 31 vB, 10.5 vB of overhead: 208.5 -> 209 (estimated).
    assert doc["vsize"] == 209
    assert doc["fee_rate_sat_vb"] == round(doc["fee_sat"] / 209, 2)
    assert [w["severity"] for w in doc["warnings"]] == []


def test_inspect_human_view_names_payment_and_change(alice, unsigned):
    home, _ = alice
    result = invoke("--home", str(home), "psbt", "inspect", str(unsigned[0]), "--wallet", "vault")
    assert result.exit_code == 0, result.output
    assert "PAYMENT" in result.stdout and "change 1/0" in result.stdout
    assert "No rule refuses this transaction." in result.stdout


def test_inspect_without_wallet_or_network_asks_for_the_network(tmp_path, unsigned):
    result = invoke("--home", str(tmp_path / "empty"), "psbt", "inspect", str(unsigned[0]), "--json")
    assert result.exit_code == 2
    assert "no network given" in result.output


def test_inspect_without_wallet_warns_that_change_is_unknown(tmp_path, unsigned):
    result = invoke("--home", str(tmp_path / "empty"), "--network", "regtest", "psbt", "inspect",
                    str(unsigned[0]), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [o["change"] for o in doc["outputs"]] == [False, False]
    assert "no-wallet" in {w["code"] for w in doc["warnings"]}


@pytest.mark.parametrize("content, message", [
    (b"", "PSBT"),
    (b"psbt\xff\x00", "PSBT"),
    (b"not a psbt at all", "PSBT"),
])
def test_bad_psbt_files_exit_3(tmp_path, content, message):
    path = tmp_path / "bad.psbt"
    path.write_bytes(content)
    result = invoke("--network", "regtest", "psbt", "inspect", str(path), "--json")
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "psbt-decode" and message in error["message"]


def test_missing_file_exits_3_naming_it(tmp_path):
    result = invoke("--network", "regtest", "psbt", "inspect", str(tmp_path / "nope.psbt"))
    assert result.exit_code == 3
    assert "nope.psbt" in result.output


def test_oversized_file_is_refused_before_parsing(tmp_path):
    from coldsign.limits import LIMITS

    path = tmp_path / "huge.psbt"
    with open(path, "wb") as f:
        f.truncate(LIMITS.psbt_max_bytes + 1)
    result = invoke("--network", "regtest", "psbt", "inspect", str(path))
    assert result.exit_code == 3
    assert "larger than the limit" in result.output


def test_sign_writes_the_same_encoding_and_reports(alice, unsigned, tmp_path):
    import hashlib

    home, words = alice
    path, psbt = unsigned
    b64 = tmp_path / "in.b64"
    b64.write_text(base64.b64encode(psbt.serialize()).decode())
    out = tmp_path / "signed.b64"
    result = invoke("--home", str(home), "psbt", "sign", str(b64), "--mnemonic-file", str(words),
                    "--out", str(out), "--json")   # the wallet is found by its fingerprint
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["signed_inputs"] == 2 and doc["skipped"] == [] and doc["out"] == str(out)
    assert doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    from coldsign.psbt.codec import decode_psbt

    signed = decode_psbt(out.read_bytes())
    assert signed.txid() == psbt.txid()
    assert all(len(signed.input(i).partial_sigs) == 1 for i in range(2))

    again = invoke("--home", str(home), "psbt", "sign", str(out), "--mnemonic-file", str(words),
                   "--out", str(tmp_path / "twice.psbt"), "--json")
    assert again.exit_code == 4, again.output
    assert json.loads(again.stdout)["error"]["code"] == "nothing-signed"
    assert not (tmp_path / "twice.psbt").exists()


def test_sign_with_a_seed_outside_the_wallet_is_refused(alice, unsigned, tmp_path):
    home, _ = alice
    bob = W.write_mnemonic(tmp_path, "bob")
    out = tmp_path / "signed.psbt"
    result = invoke("--home", str(home), "psbt", "sign", str(unsigned[0]), "--wallet", "vault",
                    "--mnemonic-file", str(bob), "--out", str(out), "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["error"]["code"] == "seed-not-in-wallet"
    assert not out.exists()


def test_a_bad_mnemonic_is_a_secret_problem_and_never_echoed(alice, unsigned, tmp_path):
    home, _ = alice
    words = W.mnemonic("alice").split()
    words[3] = "zzzz" + words[3]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(" ".join(words))
    result = invoke("--home", str(home), "psbt", "sign", str(unsigned[0]), "--wallet", "vault",
                    "--mnemonic-file", str(wrong), "--out", str(tmp_path / "o.psbt"))
    assert result.exit_code == 6
    assert "word 4" in result.output
    assert words[3] not in result.output   # the misspelt word is not echoed
    assert not any(" ".join(words[i:i + 2]) in result.output for i in range(len(words) - 1))


def test_combine_refuses_different_transactions(tmp_path):
    _, one = W.honest()
    _, other = W.honest(payments=[(W.EXTERNAL_SCRIPT, 140_000)])
    a, b = tmp_path / "a.psbt", tmp_path / "b.psbt"
    a.write_bytes(one.serialize())
    b.write_bytes(other.serialize())
    result = invoke("psbt", "combine", str(a), str(b), "--out", str(tmp_path / "c.psbt"), "--json")
    assert result.exit_code == 3, result.output
    assert not (tmp_path / "c.psbt").exists()


def test_finalize_an_unsigned_psbt_says_what_is_missing(unsigned, tmp_path):
    result = invoke("psbt", "finalize", str(unsigned[0]), "--out", str(tmp_path / "tx.hex"), "--json")
    assert result.exit_code == 3
    assert "input 0" in json.loads(result.stdout)["error"]["message"]
    assert not (tmp_path / "tx.hex").exists()


def test_broadcast_needs_a_chain(tmp_path):
    path = tmp_path / "tx.hex"
    path.write_text("00")
    result = invoke("psbt", "broadcast", str(path))
    assert result.exit_code == 2


def test_every_command_has_help_with_an_example():
    from coldsign.cli.main import app as root
    import typer

    group = typer.main.get_command(root)
    missing = []
    for name, sub in group.commands.items():
        for cmd_name in getattr(sub, "commands", {}):
            result = invoke(name, cmd_name, "--help")
            if result.exit_code != 0 or "Example" not in result.output:
                missing.append(f"{name} {cmd_name}")
    assert missing == []


def test_broadcast_to_a_chain_never_initialized_says_how(tmp_path):
    path = tmp_path / "tx.hex"
    path.write_text("00")
    result = invoke("--home", str(tmp_path / "nochain"), "psbt", "broadcast", str(path), "--regtest", "--json")
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["message"] == "no regtest chain here" and "regtest init" in error["hint"]
    assert not (tmp_path / "nochain" / "regtest").exists()
