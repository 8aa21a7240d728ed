"""Whole withdrawals on the embedded regtest chain, one per wallet kind (and PSBT v2), through the CLI.

For each of p2wpkh, sh(wpkh), wsh 2-of-3 sortedmulti and tr (key path): the wallet is
registered on each signer (its own home folder) with the signer's seed; two coins of 0.6 and
0.5 BTC are mined to receive addresses 0 and 1; the unsigned PSBT pays 0.7 BTC to an external
P2WPKH, the rest less a 5 sat/vB fee to change address 1/0. `coldsign psbt sign` runs once per
signer (alice; alice and bob for the multisig), `psbt finalize` combines and checks every input
with libbitcoinkernel, and `psbt broadcast --regtest` mines it: the block is accepted. The same
transaction with one signature byte flipped is mined first and its block is refused (tip stays).
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.psbt.create import create_psbt

# Every kind as PSBT v0, and the multisig and taproot ones again as PSBT v2 (BIP-370).
CASES = [("wpkh", 0), ("sh-wpkh", 0), ("wsh-sortedmulti", 0), ("tr", 0), ("wsh-sortedmulti", 2), ("tr", 2)]


def run(*args: str) -> dict:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def actual_vsize(tx_hex: str) -> int:
    from embit.transaction import Transaction

    tx = Transaction.from_string(tx_hex)
    full = len(tx.serialize())
    for txin in tx.vin:
        txin.witness = type(txin.witness)([])
    stripped = len(tx.serialize())
    return -(-(stripped * 3 + full) // 4)


def flip_signature_byte(tx_hex: str) -> str:
    from embit.script import Witness
    from embit.transaction import Transaction

    tx = Transaction.from_string(tx_hex)
    items = list(tx.vin[0].witness.items)
    # Item 0 is the signature (taproot, p2wpkh); the multisig witness starts with an empty dummy.
    n = 1 if items[0] == b"" else 0
    sig = bytearray(items[n])
    sig[10] ^= 0x01  # inside r (DER) or R (Schnorr): the structure stays valid, the signature not
    items[n] = bytes(sig)
    tx.vin[0].witness = Witness(items)
    return tx.serialize().hex()


@pytest.mark.parametrize("kind, version", CASES)
def test_withdrawal_is_mined(kind, version, tmp_path, session_chain_dir):
    from coldsign.chain.regtest import RegtestChain
    from coldsign.psbt.codec import to_version_2

    coordinator = tmp_path / "coordinator"
    shutil.copytree(session_chain_dir, coordinator / "regtest")
    wallet = W.wallet(kind)
    with RegtestChain.open(coordinator / "regtest") as chain:
        coins = W.fund(chain, wallet, [60_000_000, 50_000_000])
    psbt = create_psbt(wallet, coins, [(W.EXTERNAL_SCRIPT, 70_000_000)], fee_rate=5, change_index=0)
    if version == 2:
        psbt = to_version_2(psbt)
    unsigned = tmp_path / "unsigned.psbt"
    unsigned.write_bytes(psbt.serialize())

    signed, reviewed_txids = [], set()
    for name in W.signers_of(kind):
        home = tmp_path / name
        words = W.write_mnemonic(tmp_path, name)
        reg = run("--home", str(home), "--network", "regtest", "wallet", "register", "--name", "vault",
                  "--descriptor", W.descriptor(kind), "--mnemonic-file", str(words), "--json")
        assert reg["name"] == "vault"
        review = run("--home", str(home), "psbt", "inspect", str(unsigned), "--wallet", "vault", "--json")
        assert review["psbt_version"] == version
        assert [o["change"] for o in review["outputs"]] == [False, True]
        assert all(i["amount_verified"] for i in review["inputs"])
        assert not [w for w in review["warnings"] if w["severity"] == "refusal"]
        reviewed_txids.add(review["txid"])
        estimated_vsize = review["vsize"]
        out = tmp_path / f"{name}.psbt"
        report = run("--home", str(home), "psbt", "sign", str(unsigned), "--wallet", "vault",
                     "--mnemonic-file", str(words), "--out", str(out), "--json")
        assert report["signed_inputs"] == 2 and report["skipped"] == []
        single = kind != "wsh-sortedmulti"
        assert report["consensus_checked"] == ([0, 1] if single else [])
        signed.append(str(out))

    final = run("psbt", "finalize", *signed, "--out", str(tmp_path / "tx.hex"), "--json")
    assert final["consensus_checked"] is True
    assert {final["txid"]} == reviewed_txids   # what the custodians reviewed is what is mined
    # The unsigned estimate counts 72-byte ECDSA signatures (the maximum): never below the real size,
    # at most a vbyte or two above it (a 71-byte signature is a quarter vbyte less).
    assert 0 <= estimated_vsize - actual_vsize(final["hex"]) <= 2

    bad = tmp_path / "bad.hex"
    bad.write_text(flip_signature_byte(final["hex"]))
    refused = CliRunner().invoke(app, ["--home", str(coordinator), "psbt", "broadcast", str(bad),
                                       "--regtest", "--json"])
    assert refused.exit_code == 5, refused.output
    assert json.loads(refused.stdout)["error"]["code"] == "block-refused"

    with RegtestChain.open(coordinator / "regtest") as chain:
        tip_before = chain.height
    mined = run("--home", str(coordinator), "psbt", "broadcast", str(tmp_path / "tx.hex"), "--regtest", "--json")
    assert mined["txid"] == final["txid"]
    assert mined["height"] == tip_before + 1
    with RegtestChain.open(coordinator / "regtest") as chain:
        assert chain.height == tip_before + 1
        [change] = chain.utxos([wallet.script_pubkey(1, 0)])
        assert (change.txid, change.vout) == (final["txid"], 1)
        # 1.1 BTC in, 0.7 BTC out, a fee of 5 sat/vB on a ~200-400 vB transaction: under 3,000 sat.
        assert 40_000_000 - 3_000 < change.amount_sat < 40_000_000
