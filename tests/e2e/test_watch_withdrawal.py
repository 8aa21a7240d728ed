"""From "pay these three addresses" to a confirmed transaction, with only coldsign, for each wallet kind.

For wpkh, sh(wpkh), tr (alice alone signs) and wsh 2-of-3 sortedmulti (alice and bob sign):
  * the coordinator's home folder holds a copy of the 101-block session chain; `regtest init` finds it ready;
  * `watch import` the walletkit descriptor; `regtest fund` pays 0.4, 0.3 and 0.25 BTC to receive
    addresses 0/0, 0/1 and 0/2; `watch sync` sees 0.95 BTC;
  * `watch send` pays 0.2 BTC to an external P2WPKH, 0.15 BTC to an external P2WSH and 150,000 sat to an
    external P2TR at 3 sat/vB, change to 1/0, written to a file;
  * each signer has its own home folder: `wallet register` + `psbt sign --mnemonic-file`;
  * `watch collect` takes the signed files in reverse order with a duplicate (for the 2-of-3, alice's
    file alone first: 1 signature missing per input, not final);
  * `watch broadcast` (test_accept, then the embedded chain mines it); `watch sync`; `watch psbts`.
Checked: the balance and coins to the satoshi, computed from the amounts and the fee the mined
transaction really paid; the change coin at 1/0; the fee rate within 1 sat/vB of 3 on the real
size; the anti-fee-sniping locktime and RBF sequences; the PSBT ends confirmed.

And a withdrawal WITHOUT change (wpkh): both coins (0.4 + 0.3 BTC) swept with `--subtract-fee` to
the external P2WPKH; after broadcast (mined at once by the embedded chain) and one more block, the
coins alone cannot show it confirmed (`watch psbts` still says broadcast), `watch sync` asks the
chain source (`tx_height`) and the PSBT becomes confirmed with an empty wallet.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app

pytestmark = pytest.mark.e2e

FUNDS = [40_000_000, 30_000_000, 25_000_000]
PAYMENTS = [20_000_000, 15_000_000, 150_000]
FEE_RATE = 3


def run(*args: str) -> dict:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def externals() -> list[str]:
    from coldsign.chain.address import regtest_address

    return [regtest_address(bytes.fromhex("0014") + bytes(range(20))),
            regtest_address(bytes.fromhex("0020") + bytes(range(32))),
            regtest_address(bytes.fromhex("5120") + bytes(range(1, 33)))]


def real_vsize(tx) -> int:
    full = len(tx.serialize())
    for txin in tx.vin:
        txin.witness = type(txin.witness)([])
    return -(-(len(tx.serialize()) * 3 + full) // 4)


@pytest.mark.parametrize("kind", ["wpkh", "sh-wpkh", "tr", "wsh-sortedmulti"])
def test_pay_three_addresses_to_confirmed(kind, tmp_path, session_chain_dir):
    from embit.transaction import Transaction

    home = tmp_path / "coordinator"
    shutil.copytree(session_chain_dir, home / "regtest")
    coordinator = ("--home", str(home), "--network", "regtest")
    assert run(*coordinator, "regtest", "init", "--json")["mined"] == 0
    wallet = W.wallet(kind)
    run(*coordinator, "watch", "import", "--name", "vault", "--descriptor", W.descriptor(kind), "--json")
    for index, amount in enumerate(FUNDS):
        run(*coordinator, "regtest", "fund", wallet.address(0, index), f"{amount}sat", "--json")
    synced = run(*coordinator, "watch", "sync", "vault", "--json")
    assert synced["balance"]["confirmed_sat"] == sum(FUNDS)
    tip = synced["tip"]["height"]

    to = [arg for address, amount in zip(externals(), PAYMENTS) for arg in ("--to", f"{address}:{amount}sat")]
    to[1] = f"{externals()[0]}:0.2"          # BTC notation too
    unsigned = tmp_path / "unsigned.psbt"
    sent = run(*coordinator, "watch", "send", "vault", *to, "--fee-rate", str(FEE_RATE), "--out", str(unsigned),
               "--json")
    assert [o["amount_sat"] for o in sent["outputs"]] == PAYMENTS
    assert sent["change"]["index"] == 0 and sent["change"]["address"] == wallet.address(1, 0)
    spent_sat = sum(i["amount_sat"] for i in sent["inputs"])
    assert spent_sat == sum(PAYMENTS) + sent["fee_sat"] + sent["change"]["amount_sat"]
    assert tip - 99 <= sent["locktime"] <= tip

    signed = []
    for name in W.signers_of(kind):
        signer_home = tmp_path / name
        words = W.write_mnemonic(tmp_path, name)
        run("--home", str(signer_home), "--network", "regtest", "wallet", "register", "--name", "vault",
            "--descriptor", W.descriptor(kind), "--mnemonic-file", str(words), "--json")
        out = tmp_path / f"signed-{name}.psbt"
        report = run("--home", str(signer_home), "psbt", "sign", str(unsigned), "--wallet", "vault",
                     "--mnemonic-file", str(words), "--out", str(out), "--json")
        assert report["signed_inputs"] == len(sent["inputs"])
        signed.append(str(out))

    fingerprints = [k.origin.fingerprint.hex() for k in wallet.keys]
    if kind == "wsh-sortedmulti":
        partial = run(*coordinator, "watch", "collect", "vault", str(sent["psbt_id"]), signed[0], "--json")
        assert partial["final"] is False and partial["status"] == "partially_signed"
        assert partial["missing"] == len(sent["inputs"])
        assert partial["signers"] == {fingerprints[0]: list(range(len(sent["inputs"])))}
    collected = run(*coordinator, "watch", "collect", "vault", str(sent["psbt_id"]), *reversed(signed), signed[0],
                    "--json")
    assert collected["final"] is True and collected["missing"] == 0 and collected["status"] == "final"
    assert collected["consensus_checked"] is True
    assert set(collected["signers"]) == set(fingerprints[:len(signed)])

    broadcast = run(*coordinator, "watch", "broadcast", "vault", str(sent["psbt_id"]), "--json")
    assert broadcast["txid"] == sent["txid"] == collected["txid"] and broadcast["status"] == "broadcast"

    tx = Transaction.from_string(collected["tx_hex"])
    assert tx.locktime == sent["locktime"] and all(i.sequence == 0xFFFFFFFD for i in tx.vin)
    fee = spent_sat - sum(out.value for out in tx.vout)
    assert fee == sent["fee_sat"]
    vsize = real_vsize(tx)
    assert FEE_RATE <= fee / vsize < FEE_RATE + 1   # the rate honoured to within 1 sat/vB

    after = run(*coordinator, "watch", "sync", "vault", "--json")
    assert after["balance"] == {"confirmed_sat": sum(FUNDS) - sum(PAYMENTS) - fee, "unconfirmed_sat": 0,
                                "total_sat": sum(FUNDS) - sum(PAYMENTS) - fee}
    coins = run(*coordinator, "watch", "utxos", "vault", "--json")["coins"]
    spent = {i["outpoint"] for i in sent["inputs"]}
    unspent = {(c["outpoint"], c["amount_sat"], c["change"], c["index"]) for c in coins}
    change_vout = len(PAYMENTS)   # the change output comes after the payments
    expected = {(f"{sent['txid']}:{change_vout}", sent["change"]["amount_sat"], 1, 0)}
    all_coins = run(*coordinator, "watch", "utxos", "vault", "--spent", "--json")["coins"]
    expected |= {(c["outpoint"], c["amount_sat"], 0, c["index"]) for c in all_coins
                 if c["change"] == 0 and c["outpoint"] not in spent}
    assert unspent == expected
    assert {c["outpoint"]: c["spent_by"] for c in all_coins if c["outpoint"] in spent} == \
        {o: sent["txid"] for o in spent}
    [item] = run(*coordinator, "watch", "psbts", "vault", "--json")["psbts"]
    assert item["status"] == "confirmed"


def test_a_withdrawal_without_change_is_confirmed_by_the_sync(tmp_path, session_chain_dir):
    from coldsign.chain.regtest_source import RegtestSource

    home = tmp_path / "coordinator"
    shutil.copytree(session_chain_dir, home / "regtest")
    coordinator = ("--home", str(home), "--network", "regtest")
    wallet = W.wallet("wpkh")
    run(*coordinator, "watch", "import", "--name", "vault", "--descriptor", W.descriptor("wpkh"), "--json")
    for index, amount in enumerate(FUNDS[:2]):
        run(*coordinator, "regtest", "fund", wallet.address(0, index), f"{amount}sat", "--json")
    assert run(*coordinator, "watch", "sync", "vault", "--json")["balance"]["confirmed_sat"] == sum(FUNDS[:2])

    unsigned = tmp_path / "sweep.psbt"
    sent = run(*coordinator, "watch", "send", "vault", "--to", f"{externals()[0]}:{sum(FUNDS[:2])}sat",
               "--subtract-fee", "--fee-rate", str(FEE_RATE), "--out", str(unsigned), "--json")
    assert sent["change"] is None and len(sent["inputs"]) == 2
    assert sent["outputs"] == [{"address": externals()[0], "amount_sat": sum(FUNDS[:2]) - sent["fee_sat"]}]

    words = W.write_mnemonic(tmp_path, "alice")
    run("--home", str(tmp_path / "alice"), "--network", "regtest", "wallet", "register", "--name", "vault",
        "--descriptor", W.descriptor("wpkh"), "--mnemonic-file", str(words), "--json")
    signed = tmp_path / "signed.psbt"
    run("--home", str(tmp_path / "alice"), "psbt", "sign", str(unsigned), "--wallet", "vault",
        "--mnemonic-file", str(words), "--out", str(signed), "--json")
    assert run(*coordinator, "watch", "collect", "vault", str(sent["psbt_id"]), str(signed), "--json")["final"]
    assert run(*coordinator, "watch", "broadcast", "vault", str(sent["psbt_id"]), "--json")["status"] == "broadcast"
    mined_at = run(*coordinator, "regtest", "mine", "--json")["height"] - 1   # broadcast mined the block before
    [item] = run(*coordinator, "watch", "psbts", "vault", "--json")["psbts"]
    assert item["status"] == "broadcast"         # no change coin: the last sync's coins cannot show it

    with RegtestSource(home) as source:          # what the sync will ask
        assert source.tx_height(sent["txid"]) == mined_at
        assert source.tx_height(sent["txid"].upper()) == mined_at
        assert source.tx_height("00" * 32) is None

    after = run(*coordinator, "watch", "sync", "vault", "--json")
    assert after["confirmed_psbts"] == [sent["psbt_id"]]
    assert after["balance"] == {"confirmed_sat": 0, "unconfirmed_sat": 0, "total_sat": 0}
    [item] = run(*coordinator, "watch", "psbts", "vault", "--json")["psbts"]
    assert item["status"] == "confirmed"
    assert run(*coordinator, "watch", "sync", "vault", "--json")["confirmed_psbts"] == []
