"""More of the watch half as users run it: broadcast through Bitcoin Core, a corrupted cosigner
signature, unconfirmed coins, the gap limit, signatures collected from QR frames, wallets imported
from a crypto-account or a receive/change descriptor pair.

Setup in words:
  * the coordinator's home holds the 101-block embedded regtest chain (tests/cli/conftest.py,
    `regtest_home`); coins are paid by that chain's miner (`RegtestChain.fund`), one block each;
  * the wallets are tests/walletkit.py's: alice's single-key accounts, and the 2-of-3
    wsh-sortedmulti of alice, bob and carol imported as `vault`, funded with 0.5 BTC at receive
    0/0 and 0.3 BTC at 0/1, synced; a withdrawal pays 0.6 BTC (both coins) to
    walletkit.EXTERNAL_SCRIPT at 2 sat/vB, change to 1/0;
  * each signer signs in their own home folder (`wallet register` + `psbt sign --mnemonic-file`);
  * Bitcoin Core and Esplora are real HTTP servers on 127.0.0.1 (tests/chainfake.py): `CoreNode`
    records the RPC methods in the order they arrive; `ScenarioEsplora` serves the scenario of
    tests/data/chain (alice's wpkh wallet: 0.3 BTC confirmed at receive 0/1, 0.05 BTC unconfirmed
    at 0/2).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import walletkit as W
from chainfake import B, C, CoreNode, ScenarioEsplora, TX2, TX3, fakes_of
from coldsign.cli.main import app


def invoke(home, *args):
    return CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "--json", *map(str, args)])


def ok(home, *args) -> dict:
    result = invoke(home, *args)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def error(result, exit_code: int) -> dict:
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)["error"]


def destination() -> str:
    from coldsign.chain.address import regtest_address

    return regtest_address(W.EXTERNAL_SCRIPT)


def embit_address(descriptor: str, change: int, index: int) -> str:
    from embit.descriptor import Descriptor
    from embit.networks import NETWORKS

    return Descriptor.from_string(descriptor.split("#")[0]).derive(index, branch_index=change).address(
        NETWORKS["regtest"])


def fund(home, kind: str, payments: dict[tuple[int, int], int]) -> None:
    """Pay each amount to the wallet's script at (change, index), one block each."""
    from coldsign.chain.regtest import RegtestChain

    wallet = W.wallet(kind)
    with RegtestChain.open(home / "regtest") as chain:
        for (change, index), amount in payments.items():
            chain.fund(wallet.script_pubkey(change, index), amount)


def watched(home, kind: str) -> None:
    """`kind`'s walletkit wallet imported as vault, 0.5 BTC at 0/0 and 0.3 BTC at 0/1, synced."""
    ok(home, "watch", "import", "--name", "vault", "--descriptor", W.descriptor(kind))
    fund(home, kind, {(0, 0): 50_000_000, (0, 1): 30_000_000})
    assert ok(home, "watch", "sync", "vault")["balance"]["confirmed_sat"] == 80_000_000


def withdraw(home, tmp_path) -> tuple[dict, str]:
    """`watch send` of 0.6 BTC (both coins) at 2 sat/vB; the result and the unsigned PSBT's path."""
    unsigned = tmp_path / "unsigned.psbt"
    sent = ok(home, "watch", "send", "vault", "--to", f"{destination()}:0.6", "--fee-rate", "2", "--out", unsigned)
    assert len(sent["inputs"]) == 2
    return sent, str(unsigned)


def sign(tmp_path, name: str, kind: str, unsigned: str, *answer) -> tuple[dict, str]:
    """`name` signs in their own home folder; the report and the signed file. `answer` adds options
    such as --frames-dir DIR."""
    home = tmp_path / name
    words = W.write_mnemonic(tmp_path, name)
    if not home.exists():
        ok(home, "wallet", "register", "--name", "vault", "--descriptor", W.descriptor(kind),
           "--mnemonic-file", words)
    out = tmp_path / f"signed-{name}.psbt"
    report = ok(home, "psbt", "sign", unsigned, "--wallet", "vault", "--mnemonic-file", words, "--out", out,
                *answer)
    assert report["signed_inputs"] == 2
    return report, str(out)


def status_of(home, psbt_id: int) -> str:
    [item] = [p for p in ok(home, "watch", "psbts", "vault")["psbts"] if p["id"] == psbt_id]
    return item["status"]


# ---------------------------------------------------------------- 1. broadcast through Bitcoin Core

@pytest.fixture()
def final_withdrawal(regtest_home, tmp_path) -> dict:
    """alice's wpkh vault with a final withdrawal (collected, every input checked)."""
    watched(regtest_home, "wpkh")
    sent, unsigned = withdraw(regtest_home, tmp_path)
    _, signed = sign(tmp_path, "alice", "wpkh", unsigned)
    assert ok(regtest_home, "watch", "collect", "vault", sent["psbt_id"], signed)["status"] == "final"
    return sent


@pytest.fixture()
def core():
    with fakes_of(CoreNode) as start:
        yield start


def core_url(node: CoreNode) -> str:
    return f"bitcoind://coldsign:horse@127.0.0.1:{node.port}?retries=0&timeout=5"


def test_broadcast_through_bitcoin_core_asks_testmempoolaccept_first(regtest_home, final_withdrawal, core):
    node = core()
    sent = final_withdrawal
    doc = ok(regtest_home, "watch", "broadcast", "vault", sent["psbt_id"], "--source", core_url(node))
    assert doc["txid"] == sent["txid"] and doc["status"] == "broadcast"
    assert doc["source"] == f"Bitcoin Core at 127.0.0.1:{node.port}"
    assert node.calls == ["getblockchaininfo", "testmempoolaccept", "sendrawtransaction"]
    assert status_of(regtest_home, sent["psbt_id"]) == "broadcast"


def test_broadcast_refused_by_testmempoolaccept_sends_nothing(regtest_home, final_withdrawal, core):
    node = core(rejects=True)
    sent = final_withdrawal
    err = error(invoke(regtest_home, "watch", "broadcast", "vault", sent["psbt_id"], "--source", core_url(node)), 4)
    assert err["code"] == "not-accepted"
    assert err["message"] == "the chain source would not accept the transaction: min relay fee not met"
    assert err["where"] == f"Bitcoin Core at 127.0.0.1:{node.port}"
    assert node.calls == ["getblockchaininfo", "testmempoolaccept"]        # no sendrawtransaction
    assert status_of(regtest_home, sent["psbt_id"]) == "final"


def test_psbt_broadcast_through_a_source_takes_the_same_two_steps(regtest_home, final_withdrawal, core, tmp_path):
    """`psbt broadcast FILE --source URL`, for a final transaction made outside the watch database:
    the acceptance test first, then the broadcast; refused, nothing sent; without --source or
    --regtest, a usage error naming both."""
    from coldsign.watch.db import WatchDB

    with WatchDB.open(regtest_home) as db:
        tx = tmp_path / "final.tx"
        tx.write_text(db.transaction_raw(final_withdrawal["txid"]).hex() + "\n")
    node = core()
    doc = ok(regtest_home, "psbt", "broadcast", tx, "--source", core_url(node))
    assert doc == {"txid": final_withdrawal["txid"], "accepted": True,
                   "source": f"Bitcoin Core at 127.0.0.1:{node.port}"}
    assert node.calls == ["getblockchaininfo", "testmempoolaccept", "sendrawtransaction"]
    refusing = core(rejects=True)
    err = error(invoke(regtest_home, "psbt", "broadcast", tx, "--source", core_url(refusing)), 4)
    assert err["code"] == "not-accepted" and "sendrawtransaction" not in refusing.calls
    err = error(invoke(regtest_home, "psbt", "broadcast", tx), 2)
    assert err["message"] == "say where the transaction goes: --regtest (the embedded chain) or --source URL"


# ---------------------------------------------------------------- 2. a corrupted cosigner signature

def corrupted(signed: str, tmp_path) -> str:
    """The signed PSBT with input 0's signature changed: still strict DER, but s is off by one
    bit in its last byte, so it signs nothing."""
    from coldsign.psbt import fields as F
    from coldsign.psbt.codec import Psbt

    psbt = Psbt.parse(open(signed, "rb").read())
    [(pubkey, sig)] = psbt.inputs[0].items(F.PSBT_IN_PARTIAL_SIG)
    bad = sig[:-2] + bytes([sig[-2] ^ 1]) + sig[-1:]      # the last byte before the sighash type
    psbt.inputs[0].set(F.PSBT_IN_PARTIAL_SIG, pubkey, bad)
    path = tmp_path / "corrupted.psbt"
    path.write_bytes(psbt.serialize())
    return str(path)


def test_a_corrupted_cosigner_signature_is_rejected_by_libbitcoinkernel_and_nothing_is_stored(
        regtest_home, tmp_path):
    watched(regtest_home, "wsh-sortedmulti")
    sent, unsigned = withdraw(regtest_home, tmp_path)
    _, alice = sign(tmp_path, "alice", "wsh-sortedmulti", unsigned)
    _, bob = sign(tmp_path, "bob", "wsh-sortedmulti", unsigned)
    partial = ok(regtest_home, "watch", "collect", "vault", sent["psbt_id"], alice)
    assert partial["status"] == "partially_signed" and partial["missing"] == 2

    err = error(invoke(regtest_home, "watch", "collect", "vault", sent["psbt_id"], corrupted(bob, tmp_path)), 5)
    assert err["message"] == "libbitcoinkernel rejects input(s) 0; nothing was stored"
    assert err["code"] == "consensus" and [d["index"] for d in err["details"]] == [0]
    assert status_of(regtest_home, sent["psbt_id"]) == "partially_signed"
    refused = error(invoke(regtest_home, "watch", "broadcast", "vault", sent["psbt_id"]), 4)
    assert refused["code"] == "not-final"
    # the bad signature was not kept: alice's file alone still leaves bob's two missing, and bob's
    # good file then completes the withdrawal (a kept bad signature would win over it)
    assert ok(regtest_home, "watch", "collect", "vault", sent["psbt_id"], alice)["missing"] == 2
    final = ok(regtest_home, "watch", "collect", "vault", sent["psbt_id"], bob)
    assert final["status"] == "final" and final["consensus_checked"] is True


# ---------------------------------------------------------------- 3. unconfirmed coins

@pytest.fixture()
def esplora():
    with fakes_of(ScenarioEsplora) as start:
        yield start


def test_unconfirmed_coins_are_spent_only_when_asked(tmp_path, esplora):
    """The scenario's wallet holds B's 0.3 BTC (confirmed) and C's 0.05 BTC (tx3, in the mempool)."""
    home = tmp_path / "coord"
    server = esplora()
    ok(home, "watch", "import", "--name", "vault", "--descriptor", W.descriptor("wpkh"))
    synced = ok(home, "watch", "sync", "vault", "--source", f"esplora://127.0.0.1:{server.port}?retries=0")
    assert synced["balance"] == {"confirmed_sat": 30_000_000, "unconfirmed_sat": 5_000_000, "total_sat": 35_000_000}
    coins = {c["outpoint"]: c for c in ok(home, "watch", "utxos", "vault")["coins"]}
    confirmed, unconfirmed = f"{TX2}:0", f"{TX3}:0"
    assert (coins[confirmed]["height"], coins[unconfirmed]["height"]) == (150, None)
    assert W.wallet("wpkh").script_pubkey(0, 1) == B and W.wallet("wpkh").script_pubkey(0, 2) == C

    pay = ("--to", f"{destination()}:0.32", "--fee-rate", "2")      # needs both coins
    err = error(invoke(home, "watch", "send", "vault", *pay), 4)
    assert err["code"] == "insufficient-funds"
    assert err["details"] == [{"code": "unconfirmed-not-counted", "message": unconfirmed}]
    err = error(invoke(home, "watch", "send", "vault", "--to", f"{destination()}:0.01", "--fee-rate", "2",
                       "--from-coins", unconfirmed), 4)
    assert err["code"] == "unconfirmed-coin" and err["message"] == f"coin {unconfirmed} is unconfirmed"
    assert ok(home, "watch", "psbts", "vault")["psbts"] == []           # nothing stored

    both = ok(home, "watch", "send", "vault", *pay, "--include-unconfirmed")
    assert sorted(i["outpoint"] for i in both["inputs"]) == sorted([confirmed, unconfirmed])
    chosen = ok(home, "watch", "send", "vault", "--to", f"{destination()}:0.01", "--fee-rate", "2",
                "--from-coins", unconfirmed, "--include-unconfirmed")
    assert [i["outpoint"] for i in chosen["inputs"]] == [unconfirmed]


# ---------------------------------------------------------------- 4. the gap limit

def test_the_gap_limit_of_import_and_of_sync_sets_how_far_the_sync_looks(regtest_home):
    """0.1 BTC at receive index 25 only. With no script used, a sync asks indexes 0 to gap-1 of each
    branch: 20 (the default) and 25 miss it, 26 finds it and then looks 26 past it."""
    fund(regtest_home, "wpkh", {(0, 25): 10_000_000})
    ok(regtest_home, "watch", "import", "--name", "near", "--descriptor", W.descriptor("wpkh"))
    far = ok(regtest_home, "watch", "import", "--name", "far", "--descriptor", W.descriptor("wpkh"),
             "--gap-limit", "26")
    assert far["gap_limit"] == 26 and ok(regtest_home, "watch", "show", "far")["gap_limit"] == 26

    missed = ok(regtest_home, "watch", "sync", "near")
    assert missed["new_coins"] == [] and missed["scripts_scanned"] == 2 * 20
    assert missed["highest_used"] == {"receive": None, "change": None}
    found = ok(regtest_home, "watch", "sync", "far")
    assert found["balance"]["confirmed_sat"] == 10_000_000 and found["highest_used"]["receive"] == 25
    assert found["scripts_scanned"] == (25 + 1 + 26) + 26

    assert ok(regtest_home, "watch", "sync", "near", "--gap-limit", "25")["scripts_scanned"] == 2 * 25
    assert ok(regtest_home, "watch", "balance", "near")["confirmed_sat"] == 0
    overridden = ok(regtest_home, "watch", "sync", "near", "--gap-limit", "26")
    assert overridden["balance"]["confirmed_sat"] == 10_000_000 and len(overridden["new_coins"]) == 1
    [coin] = ok(regtest_home, "watch", "utxos", "near")["coins"]
    assert (coin["change"], coin["index"]) == (0, 25)
    assert ok(regtest_home, "watch", "show", "near")["gap_limit"] == 20     # the override was for one sync


# ---------------------------------------------------------------- 5. signatures collected from QR frames

def test_collect_scans_the_signers_answer_frames_from_images_and_text(regtest_home, tmp_path):
    """alice answers as QR pictures (read with --images), bob as the frames' text (--text); each
    answer carries only the signatures, which collect merges into the stored withdrawal."""
    watched(regtest_home, "wsh-sortedmulti")
    sent, unsigned = withdraw(regtest_home, tmp_path)
    alice_report, _ = sign(tmp_path, "alice", "wsh-sortedmulti", unsigned, "--frames-dir", tmp_path / "alice-qr")
    bob_report, _ = sign(tmp_path, "bob", "wsh-sortedmulti", unsigned, "--frames-dir", tmp_path / "bob-qr")
    assert alice_report["qr"]["content"] == bob_report["qr"]["content"] == "signatures"

    fingerprints = {n: W.seed(n).fingerprint_hex for n in ("alice", "bob")}
    partial = ok(regtest_home, "watch", "collect", "vault", sent["psbt_id"], "--scan",
                 "--images", f"{tmp_path / 'alice-qr'}/frame-*.png")
    assert partial["status"] == "partially_signed" and partial["missing"] == 2
    assert partial["signers"] == {fingerprints["alice"]: [0, 1]}
    final = ok(regtest_home, "watch", "collect", "vault", sent["psbt_id"], "--scan",
               "--text", tmp_path / "bob-qr" / "frames.txt")
    assert final["status"] == "final" and final["consensus_checked"] is True and final["missing"] == 0
    assert final["signers"] == {fingerprints["alice"]: [0, 1], fingerprints["bob"]: [0, 1]}
    assert ok(regtest_home, "watch", "broadcast", "vault", sent["psbt_id"])["txid"] == sent["txid"]


# ---------------------------------------------------------------- 6. crypto-account, receive/change pair

@pytest.fixture(scope="module")
def account_frames(tmp_path_factory):
    """alice's crypto-account (every standard single-key account) as UR QR pictures."""
    folder = tmp_path_factory.mktemp("account")
    words = W.write_mnemonic(folder, "alice")
    ok(folder / "home", "key", "export", "--mnemonic-file", words, "--format", "ur", "--ur-type", "crypto-account",
       "--frames-dir", folder / "qr")
    return f"{folder / 'qr'}/frame-*.png"


@pytest.mark.parametrize("script_type", [None, "wpkh", "sh-wpkh", "tr"])
def test_import_scans_a_crypto_account_and_takes_the_account_asked_for(tmp_path, account_frames, script_type):
    """--script-type picks the account (wpkh, sh-wpkh, tr); without it, wpkh."""
    kind = script_type or "wpkh"
    chosen = ["--script-type", script_type] if script_type else []
    doc = ok(tmp_path, "watch", "import", "--name", "alice", "--scan", "--images", account_frames, *chosen)
    assert doc["source"] == "ur" and doc["kind"] == kind
    assert doc["first_address"] == embit_address(W.descriptor(kind), 0, 0)
    assert doc["descriptor"] == W.wallet(kind).canonical()
    assert [(k["fingerprint"], k["path"]) for k in doc["keys"]] == [
        (W.seed("alice").fingerprint_hex, W.wallet(kind).keys[0].origin.path_str())]


def test_import_a_receive_and_change_descriptor_pair(regtest_home):
    """The 2-of-3 as a /0/* receive and a /1/* change descriptor: the same wallet as its /<0;1>/*
    form; a coin at change 1/2 is found as change."""
    from embit.descriptor.checksum import add_checksum

    body = W.descriptor("wsh-sortedmulti").split("#")[0]
    receive, change = (add_checksum(body.replace("/<0;1>/*", f"/{b}/*")) for b in (0, 1))
    doc = ok(regtest_home, "watch", "import", "--name", "vault", "--descriptor", receive,
             "--change-descriptor", change)
    assert doc["descriptor"] == W.wallet("wsh-sortedmulti").canonical()
    assert doc["first_address"] == embit_address(receive, 0, 0)

    fund(regtest_home, "wsh-sortedmulti", {(0, 1): 20_000_000, (1, 2): 10_000_000})
    ok(regtest_home, "watch", "sync", "vault")
    coins = ok(regtest_home, "watch", "utxos", "vault")["coins"]
    assert sorted((c["change"], c["index"], c["amount_sat"], c["address"]) for c in coins) == [
        (0, 1, 20_000_000, embit_address(receive, 0, 1)), (1, 2, 10_000_000, embit_address(change, 0, 2))]

    alices = add_checksum(W.descriptor("wpkh").split("#")[0].replace("/<0;1>/*", "/1/*"))
    refused = invoke(regtest_home, "watch", "import", "--name", "other", "--descriptor", receive,
                     "--change-descriptor", alices)
    assert refused.exit_code == 3, refused.output
