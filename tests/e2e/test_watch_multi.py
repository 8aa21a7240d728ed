"""An unsorted `wsh(multi(2,...))` wallet through the whole watch flow, with only coldsign.

The wallet is walletkit's "wsh-multi": the 2-of-3 keys of carol, alice and bob at 48h/1h/0h/2h, in
that order (not sorted: its scripts differ from the sortedmulti wallet's at every address used here).
  * the coordinator's home folder holds a copy of the 101-block session chain;
  * `watch import` the descriptor; `regtest fund` pays 0.4, 0.3 and 0.25 BTC to receive addresses
    0/0, 0/1 and 0/2; `watch sync` sees 0.95 BTC;
  * `watch send` pays 0.6 BTC to walletkit.EXTERNAL_SCRIPT (P2WPKH) and 0.2 BTC to an external P2WSH
    at 3 sat/vB, change to 1/0, written to a file;
  * alice and bob sign in their own home folders (`wallet register` + `psbt sign --mnemonic-file`);
  * `watch collect` takes bob's file alone (one signature missing per input), then both files and
    bob's again; `watch broadcast` (the embedded chain mines it); `watch sync`.
Checked: each input's witness script keeps the descriptor's key order (carol, alice, bob), not the
sorted one, and libbitcoinkernel accepts the two signatures against it; the balance to the
satoshi (the funds less the payments less the fee the mined transaction really paid); the change
coin found at 1/0 with the amount `watch send` announced; the inputs spent by the txid; the PSBT
confirmed.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app

pytestmark = pytest.mark.e2e

KIND = "wsh-multi"
FUNDS = [40_000_000, 30_000_000, 25_000_000]
EXTERNAL_P2WSH = bytes.fromhex("0020") + bytes(range(32))
PAYMENTS = [(W.EXTERNAL_SCRIPT, 60_000_000), (EXTERNAL_P2WSH, 20_000_000)]
FEE_RATE = 3


def run(*args) -> dict:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def multisig_keys(witness_script: bytes) -> list[bytes]:
    """The keys of `OP_2 <key> <key> <key> OP_3 OP_CHECKMULTISIG`, in script order."""
    assert witness_script[0] == 0x52 and witness_script[-2:] == bytes([0x53, 0xAE])
    body = witness_script[1:-2]
    keys = [body[i + 1:i + 34] for i in range(0, len(body), 34)]
    assert all(body[i] == 33 for i in range(0, len(body), 34)) and len(keys) == 3
    return keys


def test_unsorted_multi_pays_and_confirms_with_its_change_recognised(tmp_path, session_chain_dir):
    from embit.transaction import Transaction

    from coldsign.chain.address import regtest_address

    home = tmp_path / "coordinator"
    shutil.copytree(session_chain_dir, home / "regtest")
    coordinator = ("--home", home, "--network", "regtest")
    wallet, sorted_wallet = W.wallet(KIND), W.wallet("wsh-sortedmulti")
    assert all(wallet.address(c, i) != sorted_wallet.address(c, i) for c, i in [(0, 0), (0, 1), (0, 2), (1, 0)])

    imported = run(*coordinator, "watch", "import", "--name", "vault", "--descriptor", W.descriptor(KIND), "--json")
    assert imported["kind"] == KIND and imported["policy"] == "2 of 3"
    assert [k["fingerprint"] for k in imported["keys"]] == [W.seed(n).fingerprint_hex for n in W.MULTI_ORDER]
    for index, amount in enumerate(FUNDS):
        run(*coordinator, "regtest", "fund", wallet.address(0, index), f"{amount}sat", "--json")
    assert run(*coordinator, "watch", "sync", "vault", "--json")["balance"]["confirmed_sat"] == sum(FUNDS)

    unsigned = tmp_path / "unsigned.psbt"
    to = [arg for script, amount in PAYMENTS for arg in ("--to", f"{regtest_address(script)}:{amount}sat")]
    sent = run(*coordinator, "watch", "send", "vault", *to, "--fee-rate", FEE_RATE, "--out", unsigned, "--json")
    assert sent["change"]["index"] == 0 and sent["change"]["address"] == wallet.address(1, 0)
    spent_sat = sum(i["amount_sat"] for i in sent["inputs"])
    assert spent_sat == sum(a for _, a in PAYMENTS) + sent["fee_sat"] + sent["change"]["amount_sat"]

    signed = {}
    for name in W.signers_of(KIND):
        signer_home, words = tmp_path / name, W.write_mnemonic(tmp_path, name)
        run("--home", signer_home, "--network", "regtest", "wallet", "register", "--name", "vault",
            "--descriptor", W.descriptor(KIND), "--mnemonic-file", words, "--json")
        signed[name] = tmp_path / f"signed-{name}.psbt"
        report = run("--home", signer_home, "psbt", "sign", unsigned, "--wallet", "vault", "--mnemonic-file",
                     words, "--out", signed[name], "--json")
        assert report["signed_inputs"] == len(sent["inputs"])

    inputs = range(len(sent["inputs"]))
    fingerprint = {n: W.seed(n).fingerprint_hex for n in W.COSIGNERS}
    partial = run(*coordinator, "watch", "collect", "vault", sent["psbt_id"], signed["bob"], "--json")
    assert partial["status"] == "partially_signed" and partial["missing"] == len(inputs)
    assert partial["signers"] == {fingerprint["bob"]: list(inputs)}
    collected = run(*coordinator, "watch", "collect", "vault", sent["psbt_id"], signed["alice"], signed["bob"],
                    signed["bob"], "--json")
    assert collected["final"] is True and collected["consensus_checked"] is True
    assert collected["signers"] == {fingerprint["alice"]: list(inputs), fingerprint["bob"]: list(inputs)}

    tx = Transaction.from_string(collected["tx_hex"])
    paths = {i["outpoint"]: i["index"] for i in run(*coordinator, "watch", "utxos", "vault", "--json")["coins"]}
    for txin in tx.vin:
        index = paths[f"{txin.txid.hex()}:{txin.vout}"]
        empty, _first, _second, script = txin.witness.items     # the dummy, two signatures, the script
        keys = multisig_keys(script)
        assert empty == b"" and script == wallet.witness_script(0, index)
        assert keys == [wallet.keys[n].pubkey_at(0, index) for n in range(3)] and keys != sorted(keys)

    broadcast = run(*coordinator, "watch", "broadcast", "vault", sent["psbt_id"], "--json")
    assert broadcast["txid"] == sent["txid"] == collected["txid"]
    fee = spent_sat - sum(out.value for out in tx.vout)
    assert fee == sent["fee_sat"]

    after = run(*coordinator, "watch", "sync", "vault", "--json")
    left = sum(FUNDS) - sum(a for _, a in PAYMENTS) - fee
    assert after["balance"] == {"confirmed_sat": left, "unconfirmed_sat": 0, "total_sat": left}
    coins = run(*coordinator, "watch", "utxos", "vault", "--spent", "--json")["coins"]
    spent = {i["outpoint"] for i in sent["inputs"]}
    assert {c["outpoint"]: c["spent_by"] for c in coins if c["spent_by"]} == {o: sent["txid"] for o in spent}
    unspent = {(c["outpoint"], c["change"], c["index"], c["amount_sat"]) for c in coins if not c["spent_by"]}
    change_coin = (f"{sent['txid']}:{len(PAYMENTS)}", 1, 0, sent["change"]["amount_sat"])
    assert change_coin in unspent and sum(c[3] for c in unspent) == left
    [item] = run(*coordinator, "watch", "psbts", "vault", "--json")["psbts"]
    assert item["status"] == "confirmed"

