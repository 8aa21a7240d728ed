"""`coldsign regtest init | mine | fund | status` as users run them: exit codes and JSON.

Addresses are built here from fixed 20-byte hashes (0x44…, 0x55…) in each encoding, so a
test fails if coldsign maps an address to the wrong scriptPubKey: the resulting coins are
looked up by script in the chain afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from embit import base58, bech32
from typer.testing import CliRunner

from coldsign.chain.regtest import RegtestChain
from coldsign.cli.main import app

H160 = bytes([0x44]) * 20
P2WPKH_SCRIPT = b"\x00\x14" + H160
BCRT_P2WPKH = bech32.encode("bcrt", 0, H160)
BCRT_P2TR = bech32.encode("bcrt", 1, bytes([0x66]) * 32)
M_P2PKH = base58.encode_check(b"\x6f" + bytes([0x55]) * 20)
P2SH_2 = base58.encode_check(b"\xc4" + bytes([0x55]) * 20)


def run(home, *args):
    result = CliRunner().invoke(app, ["--home", str(home), "regtest", *args])
    return result


def doc_of(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON document
    return json.loads(lines[0])


def test_init_creates_a_fundable_chain_and_is_idempotent(tmp_path):
    first = run(tmp_path, "init", "--json")
    assert first.exit_code == 0, first.stderr
    doc = doc_of(first)
    assert (doc["height"], doc["mined"]) == (101, 101)
    assert doc["datadir"] == str(tmp_path / "regtest")
    assert doc["miner_address"].startswith("bcrt1q")
    again = doc_of(run(tmp_path, "init", "--json"))
    assert (again["height"], again["mined"], again["tip"]) == (101, 0, doc["tip"])


def test_status_reports_height_tip_and_miner_balance(regtest_home):
    result = run(regtest_home, "status", "--json")
    assert result.exit_code == 0, result.stderr
    doc = doc_of(result)
    assert set(doc) >= {"datadir", "height", "tip", "miner_balance_sat"}
    assert doc["height"] == 101
    assert doc["miner_balance_sat"] == 101 * 50 * 100_000_000
    # block 102 may spend the coinbases of blocks 1 and 2
    assert doc["miner_spendable_sat"] == 2 * 50 * 100_000_000
    with RegtestChain.open(regtest_home / "regtest") as chain:
        assert doc["tip"] == chain.tip_hash


def test_mine_blocks_to_an_address(regtest_home):
    result = run(regtest_home, "mine", "--blocks", "3", "--to", BCRT_P2WPKH, "--json")
    assert result.exit_code == 0, result.stderr
    doc = doc_of(result)
    assert doc["height"] == 104
    assert [b["height"] for b in doc["blocks"]] == [102, 103, 104]
    assert doc["tip"] == doc["blocks"][-1]["hash"]
    with RegtestChain.open(regtest_home / "regtest") as chain:
        coins = chain.utxos([P2WPKH_SCRIPT])
    assert [(c.height, c.amount_sat, c.coinbase) for c in coins] == [
        (h, 50 * 100_000_000, True) for h in (102, 103, 104)]


def test_mine_defaults_to_one_block_to_the_miner(regtest_home):
    doc = doc_of(run(regtest_home, "mine", "--json"))
    assert doc["height"] == 102 and len(doc["blocks"]) == 1
    status = doc_of(run(regtest_home, "status", "--json"))
    assert status["miner_balance_sat"] == 102 * 50 * 100_000_000


@pytest.mark.parametrize("address, script", [
    (BCRT_P2WPKH, P2WPKH_SCRIPT),
    (BCRT_P2WPKH.upper(), P2WPKH_SCRIPT),
    (BCRT_P2TR, b"\x51\x20" + bytes([0x66]) * 32),
    (M_P2PKH, b"\x76\xa9\x14" + bytes([0x55]) * 20 + b"\x88\xac"),
    (P2SH_2, b"\xa9\x14" + bytes([0x55]) * 20 + b"\x87"),
])
def test_fund_pays_the_address_in_btc(regtest_home, address, script):
    result = run(regtest_home, "fund", address, "0.5", "--json")
    assert result.exit_code == 0, result.stderr
    doc = doc_of(result)
    assert doc["amount_sat"] == 50_000_000
    assert (doc["address"], doc["vout"], doc["height"]) == (address, 0, 102)
    with RegtestChain.open(regtest_home / "regtest") as chain:
        [coin] = chain.utxos([script])
    assert (coin.txid, coin.vout, coin.amount_sat, coin.height) == (doc["txid"], 0, 50_000_000, 102)


@pytest.mark.parametrize("amount, sat", [("50000sat", 50_000), ("1sat", 1), ("0.00000001", 1),
                                         ("21", 2_100_000_000)])
def test_fund_amount_forms(regtest_home, amount, sat):
    doc = doc_of(run(regtest_home, "fund", BCRT_P2WPKH, amount, "--json"))
    assert doc["amount_sat"] == sat


@pytest.mark.parametrize("address", [
    bech32.encode("bc", 0, H160),                     # mainnet segwit
    bech32.encode("tb", 0, H160),                     # testnet segwit
    base58.encode_check(b"\x00" + H160),             # mainnet P2PKH (1…)
    BCRT_P2WPKH[:-1] + ("q" if BCRT_P2WPKH[-1] != "q" else "p"),  # bad checksum
    "not-an-address",
])
def test_fund_to_a_non_regtest_address_exits_3_naming_it(regtest_home, address):
    result = run(regtest_home, "fund", address, "0.5", "--json")
    assert result.exit_code == 3
    error = doc_of(result)["error"]
    assert error["code"] == "bad-input"
    assert address in error["message"] and "regtest" in error["message"]
    assert address in result.stderr
    with RegtestChain.open(regtest_home / "regtest") as chain:
        assert chain.height == 101  # nothing was mined


def test_mine_to_a_non_regtest_address_exits_3(regtest_home):
    result = run(regtest_home, "mine", "--to", bech32.encode("bc", 0, H160), "--json")
    assert result.exit_code == 3
    assert doc_of(result)["error"]["message"] == (
        f"{bech32.encode('bc', 0, H160)!r} is not a regtest address")


@pytest.mark.parametrize("amount, message", [
    ("0", "must be above zero"),
    ("-1", "must be above zero"),
    ("0.000000001", "more than 8 decimals"),
    ("21000001", "at most 21,000,000 BTC"),
    ("lots", "is not a number"),
])
def test_fund_bad_amount_exits_3(regtest_home, amount, message):
    result = run(regtest_home, "fund", "--json", "--", BCRT_P2WPKH, amount)  # "--": "-1" is no option
    assert result.exit_code == 3
    assert message in doc_of(result)["error"]["message"]


@pytest.mark.parametrize("command", [["status"], ["mine"], ["fund", BCRT_P2WPKH, "1"]])
def test_commands_before_init_exit_3(tmp_path, command):
    result = run(tmp_path, *command, "--json")
    assert result.exit_code == 3
    error = doc_of(result)["error"]
    assert error["code"] == "not-found" and "regtest init" in error["hint"]
    assert not (tmp_path / "regtest").exists()


def test_chain_held_by_another_process_exits_7(regtest_home):
    with RegtestChain.open(regtest_home / "regtest"):
        done = subprocess.run(
            [sys.executable, "-m", "coldsign", "--home", str(regtest_home), "regtest",
             "status", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "environment"
    assert error["message"] == "the regtest chain is in use by another process"


def test_regtest_commands_refuse_another_network(regtest_home):
    result = CliRunner().invoke(app, ["--home", str(regtest_home), "--network", "main",
                                      "regtest", "status", "--json"])
    assert result.exit_code == 2
    assert "regtest commands run on regtest" in doc_of(result)["error"]["message"]


@pytest.mark.parametrize("command", ["init", "mine", "fund", "status"])
def test_help_shows_an_example(command):
    result = CliRunner().invoke(app, ["regtest", command, "--help"])
    assert result.exit_code == 0
    assert "Example: coldsign" in result.stdout
