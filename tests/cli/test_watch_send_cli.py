"""`coldsign watch send | bump | collect | broadcast | psbts` as users run them: exit codes and JSON.

Setup in words: a home folder with the 101-block regtest chain (tests/cli/conftest.py), alice's wpkh
wallet (tests/walletkit.py) imported as `vault`, two coins of 0.5 and 0.3 BTC funded to receive 0/0
and 0/1 and synced. Payments go to walletkit.EXTERNAL_SCRIPT's regtest address.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app


def invoke(home, *args: str):
    return CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", *args])


def ok(home, *args: str) -> dict:
    result = invoke(home, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error(result, exit_code: int) -> dict:
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)["error"]


def destination() -> str:
    from coldsign.chain.address import regtest_address

    return regtest_address(W.EXTERNAL_SCRIPT)


@pytest.fixture()
def vault(regtest_home):
    from coldsign.chain.regtest import RegtestChain

    wallet = W.wallet("wpkh")
    ok(regtest_home, "watch", "import", "--name", "vault", "--descriptor", W.descriptor("wpkh"), "--json")
    with RegtestChain.open(regtest_home / "regtest") as chain:
        chain.fund(wallet.script_pubkey(0, 0), 50_000_000)
        chain.fund(wallet.script_pubkey(0, 1), 30_000_000)
    ok(regtest_home, "watch", "sync", "vault", "--json")
    return regtest_home


def test_help_has_examples():
    for command in ("send", "bump", "collect", "broadcast", "psbts"):
        result = CliRunner().invoke(app, ["watch", command, "--help"])
        assert result.exit_code == 0 and "Example: coldsign" in result.output


def test_send_refuses_a_mainnet_address_naming_it(vault):
    address = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    err = error(invoke(vault, "watch", "send", "vault", "--to", f"{address}:0.1", "--fee-rate", "2", "--json"), 3)
    assert err["message"] == f"{address} is a mainnet address; this wallet is on regtest"


def test_send_refuses_a_wallet_never_synced(regtest_home):
    ok(regtest_home, "watch", "import", "--name", "vault", "--descriptor", W.descriptor("wpkh"), "--json")
    err = error(invoke(regtest_home, "watch", "send", "vault", "--to", f"{destination()}:0.1", "--json"), 4)
    assert err["code"] == "never-synced" and err["message"] == "wallet vault was never synced: its coins are unknown"


def test_send_usage_errors(vault):
    err = error(invoke(vault, "watch", "send", "vault", "--to", f"{destination()}:0.1", "--qr", "--json"), 2)
    assert err["message"] == "--qr animates for a camera; --json is for scripts"
    err = error(invoke(vault, "watch", "send", "vault", "--to", destination(), "--json"), 3)
    assert err["message"] == f"--to {destination()!r} is not ADDRESS:AMOUNT"


def test_send_stores_the_psbt_and_the_next_send_takes_the_next_change_index(vault, tmp_path):
    out = tmp_path / "w.psbt"
    first = ok(vault, "watch", "send", "vault", "--to", f"{destination()}:0.6", "--fee-rate", "4",
               "--out", str(out), "--json")
    assert set(first) >= {"psbt_id", "txid", "out", "fee_sat", "fee_rate_sat_vb", "vsize", "inputs", "outputs",
                          "change", "algorithm"}
    assert first["outputs"] == [{"address": destination(), "amount_sat": 60_000_000}]
    assert first["change"]["index"] == 0 and out.read_bytes().startswith(b"psbt\xff")
    assert sum(i["amount_sat"] for i in first["inputs"]) == 80_000_000
    assert first["change"]["amount_sat"] == 20_000_000 - first["fee_sat"]
    assert first["fee_rate_sat_vb"] >= 4
    inspected = ok(vault, "psbt", "inspect", str(out), "--json")
    assert inspected["txid"] == first["txid"] and inspected["fee_sat"] == first["fee_sat"]
    # the first PSBT is pending: the same coins are warned about, the change goes to 1/1
    second = ok(vault, "watch", "send", "vault", "--to", f"{destination()}:100000sat", "--fee-rate", "4", "--json")
    assert second["change"]["index"] == 1 and len(second["warnings"]) == len(second["inputs"])
    listed = ok(vault, "watch", "psbts", "vault", "--json")["psbts"]
    assert [(p["id"], p["status"]) for p in listed] == [(first["psbt_id"], "created"), (second["psbt_id"], "created")]


def test_bump_reduces_change_or_says_how_much_is_missing(vault):
    sent = ok(vault, "watch", "send", "vault", "--to", f"{destination()}:0.6", "--fee-rate", "2", "--json")
    bumped = ok(vault, "watch", "bump", sent["txid"], "--fee-rate", "10", "--json")
    assert bumped["replaces"] == {"psbt_id": sent["psbt_id"], "txid": sent["txid"]}
    assert [i["outpoint"] for i in bumped["inputs"]] == [i["outpoint"] for i in sent["inputs"]]
    assert bumped["change"]["amount_sat"] == sent["change"]["amount_sat"] - (bumped["fee_sat"] - sent["fee_sat"])
    assert bumped["fee_sat"] == 10 * bumped["vsize"]
    err = error(invoke(vault, "watch", "bump", sent["txid"], "--fee-rate", "200000", "--json"), 4)
    assert err["code"] == "change-too-small" and "sat missing" in err["message"]
    err = error(invoke(vault, "watch", "bump", "00" * 32, "--fee-rate", "5", "--json"), 3)
    assert err["message"] == f"no withdrawal built here has txid {'00' * 32}"


def test_collect_refuses_another_transaction_and_broadcast_refuses_unsigned(vault, tmp_path):
    first = ok(vault, "watch", "send", "vault", "--to", f"{destination()}:0.1", "--fee-rate", "2", "--json")
    other = tmp_path / "other.psbt"
    ok(vault, "watch", "send", "vault", "--to", f"{destination()}:0.2", "--fee-rate", "2", "--out", str(other),
       "--json")
    err = error(invoke(vault, "watch", "collect", "vault", str(first["psbt_id"]), str(other), "--json"), 3)
    assert err["where"] == str(other) and err["message"].startswith("this PSBT is of another transaction")
    err = error(invoke(vault, "watch", "broadcast", "vault", str(first["psbt_id"]), "--json"), 4)
    assert err["code"] == "not-final" and err["message"] == f"withdrawal {first['psbt_id']} is created, not final"
    err = error(invoke(vault, "watch", "collect", "vault", "99", str(other), "--json"), 3)
    assert err["message"] == "no PSBT with id 99"


def test_send_with_qr_animates_the_psbt(vault):
    result = CliRunner().invoke(app, ["--home", str(vault), "--network", "regtest", "watch", "send", "vault",
                                      "--to", f"{destination()}:0.1", "--fee-rate", "2", "--qr", "--qr-cycles", "1"],
                                env={"COLUMNS": "240", "LINES": "140"})
    assert result.exit_code == 0, result.output
    assert "Stored PSBT 1 (status created)" in result.output
    assert "showed 1 frame(s) of UR psbt, 1 part(s)" in result.output   # qr show's own report
    assert "PSBT 1 is now sent" in result.output                         # shown to the signers
    assert [(p["id"], p["status"]) for p in ok(vault, "watch", "psbts", "vault", "--json")["psbts"]] == [(1, "sent")]
    [written] = (vault / "psbts").iterdir()   # without --out the PSBT is written in the home folder
    assert written.read_bytes().startswith(b"psbt\xff")


def test_send_takes_the_fee_rate_from_the_source_and_coins_by_label(vault):
    """--target-blocks asks the chain source (the embedded chain answers 2 sat/vB); --from-label spends only the
    coins labelled so (the 0.3 BTC coin at 0/1), and a label no coin has is refused."""
    coins = ok(vault, "watch", "utxos", "vault", "--json")["coins"]
    small = next(c for c in coins if c["amount_sat"] == 30_000_000)
    ok(vault, "watch", "label", "vault", small["outpoint"], "payroll", "--json")
    sent = ok(vault, "watch", "send", "vault", "--to", f"{destination()}:0.1", "--target-blocks", "3",
              "--from-label", "payroll", "--json")
    assert [i["outpoint"] for i in sent["inputs"]] == [small["outpoint"]]
    assert 2 <= sent["fee_rate_sat_vb"] < 3
    err = error(invoke(vault, "watch", "send", "vault", "--to", f"{destination()}:0.1", "--fee-rate", "2",
                       "--from-label", "rent", "--json"), 3)
    assert err["message"] == "no unspent coin of this wallet is labelled 'rent'"
