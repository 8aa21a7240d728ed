"""Building withdrawals and replacements (coldsign.watch.send) and collecting signatures
(coldsign.watch.collect), without a chain or a database.

Fixture in words: alice's wpkh wallet (tests/walletkit.py) holds two coins of 100,000 sat at
receive 0/0 and 0/1 with made-up previous transactions; one payment of 150,000 sat to
walletkit.EXTERNAL_SCRIPT (a P2WPKH outside every test wallet) at 2 sat/vB. Signed, the
transaction has 2 P2WPKH inputs (272 WU each with a 72-byte signature) and 2 P2WPKH outputs:
834 WU, 209 vB, a fee of 418 sat, change 200,000 - 150,000 - 418 = 49,582 sat to 1/<index>.
"""

from __future__ import annotations

import random

import pytest

import walletkit as W
from coldsign.errors import BadInput, NotFound, Refused
from coldsign.network import Network
from coldsign.psbt import fields as C
from coldsign.watch import send as B
from coldsign.watch.collect import merge, signers
from coldsign.watch.db import CoinRecord

TIP = 500


class FixedDraws:
    """An rng whose randrange answers are given in advance (to pin the anti-fee-sniping draw)."""

    def __init__(self, *answers: int):
        self.answers = list(answers)

    def randrange(self, n: int) -> int:
        value = self.answers.pop(0)
        assert 0 <= value < n
        return value

    def shuffle(self, items) -> None:
        pass


def coins_of(wallet, amounts, *, height=100, change=0):
    records, previous = [], {}
    for index, amount in enumerate(amounts):
        c = W.coin(wallet, change, index, amount)
        records.append(CoinRecord(f"{c.txid}:{c.vout}", amount, change, index, c.script_pubkey,
                                  wallet.address(change, index), height, None, None))
        previous[c.txid] = c.previous_tx
    return records, previous


def external(amount: int) -> B.Payment:
    from coldsign.chain.address import regtest_address

    return B.payment(regtest_address(W.EXTERNAL_SCRIPT), amount, Network.REGTEST)


def withdrawal(kind="wpkh", amounts=(100_000, 100_000), pay=150_000, **kw):
    wallet = W.wallet(kind)
    coins, previous = coins_of(wallet, amounts)
    args = {"fee_rate": 2, "change_index": 3, "tip_height": TIP, "previous_txs": previous,
            "rng": FixedDraws(5), **kw}
    return wallet, B.build_withdrawal(wallet, coins, [external(pay)], **args)


# ---------------------------------------------------------------- addresses

def test_an_address_of_another_network_is_refused_naming_it():
    with pytest.raises(BadInput) as err:
        B.address_script("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", Network.REGTEST)
    assert err.value.message == ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4 is a mainnet address; "
                                 "this wallet is on regtest")
    with pytest.raises(BadInput) as err:
        B.address_script("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081", Network.REGTEST)
    assert err.value.message == "'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081' is not a valid regtest address"


def test_address_scripts_on_the_right_network():
    assert B.address_script("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", Network.REGTEST) == \
        bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")
    assert B.address_script("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", Network.MAIN) == \
        bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")


def test_a_payment_below_dust_is_refused():
    with pytest.raises(BadInput) as err:
        external(293)
    assert "is below the dust limit of 294 sat" in err.value.message


# ---------------------------------------------------------------- change index, locktime

def test_change_index_skips_used_and_pending_indexes():
    assert B.choose_change_index(0, set(), set()) == 0
    assert B.choose_change_index(2, {0, 1, 3}, {2, 4}) == 5
    assert B.choose_change_index(1, {0}, {3}) == 1


def test_pending_psbts_hold_their_change_index():
    wallet, first = withdrawal(change_index=0)
    assert B.pending_change_indexes(wallet, [first.psbt]) == {0}
    # the next withdrawal takes change index 1 while the first is pending
    index = B.choose_change_index(0, set(), B.pending_change_indexes(wallet, [first.psbt]))
    _, second = withdrawal(change_index=index)
    assert second.change.index == 1 and second.change.address == wallet.address(1, 1)


def test_anti_fee_sniping_locktime():
    assert B.anti_fee_sniping_locktime(TIP, FixedDraws(1)) == TIP
    assert B.anti_fee_sniping_locktime(TIP, FixedDraws(0, 42)) == TIP - 42
    assert B.anti_fee_sniping_locktime(30, FixedDraws(0, 99)) == 0
    draws = [B.anti_fee_sniping_locktime(TIP, random.Random(seed)) for seed in range(300)]
    assert set(draws) > {TIP} and min(draws) >= TIP - 99


# ---------------------------------------------------------------- the withdrawal

def test_withdrawal_amounts_to_the_satoshi():
    wallet, result = withdrawal()
    assert (result.fee_sat, result.vsize, result.change.amount_sat) == (418, 209, 49_582)
    assert result.change.index == 3 and result.locktime == TIP and result.algorithm == "largest-first"
    tx = result.psbt.unsigned_tx()
    assert [o.value for o in tx.vout] == [150_000, 49_582]
    assert tx.vout[1].script_pubkey.data == wallet.script_pubkey(1, 3)
    assert tx.locktime == TIP and [i.sequence for i in tx.vin] == [0xFFFFFFFD] * 2
    for i in range(2):   # previous transaction and witness UTXO on every segwit v0 input
        assert result.psbt.inputs[i].get(C.PSBT_IN_NON_WITNESS_UTXO) is not None
        assert result.psbt.input(i).witness_utxo == (100_000, wallet.script_pubkey(0, i))
    assert [o.change for o in result.review.outputs] == [False, True] and not result.review.refusals


def test_multisig_withdrawal_carries_global_xpubs_and_witness_scripts():
    wallet, result = withdrawal("wsh-sortedmulti")
    assert len(result.psbt.globals.items(C.PSBT_GLOBAL_XPUB)) == 3
    assert result.psbt.input(0).witness_script == wallet.witness_script(0, 0)
    assert result.review.outputs[1].path == (1, 3)


def test_subtract_fee_takes_the_fee_from_the_payment():
    # 200,000 sat paid from both coins without change: 710 WU, 178 vB, 356 sat at 2 sat/vB
    _, result = withdrawal(pay=200_000, subtract_fee=True)
    assert result.change is None and result.fee_sat == 356
    assert [p.amount_sat for p in result.payments] == [200_000 - 356]


def test_refusals_with_their_messages():
    wallet = W.wallet("wpkh")
    coins, previous = coins_of(wallet, [100_000, 100_000])
    base = {"fee_rate": 2, "change_index": 0, "tip_height": TIP, "previous_txs": previous}
    with pytest.raises(Refused) as err:
        B.build_withdrawal(wallet, coins, [external(150_000)], **{**base, "tip_height": None})
    assert err.value.message == "the wallet was never synced: its coins are unknown"
    with pytest.raises(Refused) as err:
        B.build_withdrawal(wallet, coins, [external(150_000)], **{**base, "previous_txs": {}})
    assert err.value.code == "missing-previous-tx"
    assert err.value.message.startswith(f"the previous transaction of coin {coins[0].outpoint} is not in the "
                                        "database")
    with pytest.raises(NotFound) as err:
        B.build_withdrawal(wallet, coins, [external(1000)], chosen=["ab" * 32 + ":7"], **base)
    assert err.value.message == f"coin {'ab' * 32}:7 is not an unspent coin of this wallet"
    with pytest.raises(Refused) as err:
        B.build_withdrawal(wallet, coins, [external(250_000)], **base)
    assert err.value.code == "insufficient-funds"
    assert err.value.message == "insufficient funds: need 250356 sat, the eligible coins hold 200000 sat"
    with pytest.raises(NotFound) as err:
        B.build_withdrawal(wallet, coins, [external(1000)], label="payroll", **base)
    assert err.value.message == "no unspent coin of this wallet is labelled 'payroll'"


def test_coin_control_spends_exactly_the_chosen_coin():
    wallet = W.wallet("wpkh")
    coins, previous = coins_of(wallet, [100_000, 100_000])
    result = B.build_withdrawal(wallet, coins, [external(50_000)], fee_rate=2, change_index=0, tip_height=TIP,
                                previous_txs=previous, chosen=[coins[1].outpoint], rng=FixedDraws(5),
                                reserved={coins[1].outpoint: 4})
    assert [i["outpoint"] for i in result.inputs] == [coins[1].outpoint] and result.algorithm == "manual"
    assert result.warnings == [f"coin {coins[1].outpoint} is also spent by pending PSBT 4; only one of the "
                               "two can confirm"]


# ---------------------------------------------------------------- the replacement

def test_replacement_reduces_the_change_by_the_extra_fee():
    wallet, original = withdrawal()
    bumped = B.build_replacement(wallet, original.psbt, 10)
    assert bumped.fee_sat == 2090 and bumped.change.amount_sat == 49_582 - (2090 - 418)
    old_tx, new_tx = original.psbt.unsigned_tx(), bumped.psbt.unsigned_tx()
    assert [(i.txid, i.vout) for i in new_tx.vin] == [(i.txid, i.vout) for i in old_tx.vin]
    assert new_tx.vout[0].value == 150_000 and new_tx.locktime == old_tx.locktime
    assert bumped.change.index == 3 and bumped.txid != original.txid


def test_replacement_must_pay_the_old_fee_plus_its_own_size():
    wallet, original = withdrawal()
    with pytest.raises(Refused) as err:
        B.build_replacement(wallet, original.psbt, 2.5)
    assert err.value.code == "fee-too-low"
    assert err.value.message == ("at 2.5 sat/vB the replacement would pay 523 sat; BIP-125 needs at least 627 sat "
                                 "(the old fee of 418 sat plus 1 sat/vB on 209 vB)")
    assert err.value.hint == "use --fee-rate 3.0 or more"


def test_replacement_refused_when_the_change_cannot_pay():
    wallet, original = withdrawal()
    with pytest.raises(Refused) as err:
        B.build_replacement(wallet, original.psbt, 300)
    # without change: 178 vB x 300 = 53,400 sat needed, 418 + 49,582 = 50,000 available
    assert err.value.message == ("the change of 49582 sat cannot pay the replacement's fee: 3400 sat missing "
                                 "(fee needed 53400 sat, old fee 418 sat)")


# ---------------------------------------------------------------- collecting

def test_merge_refuses_a_psbt_of_another_transaction_naming_it():
    _, first = withdrawal()
    _, other = withdrawal(pay=140_000)
    with pytest.raises(BadInput) as err:
        merge(first.psbt, [("bob.psbt", other.psbt)])
    assert err.value.where == "bob.psbt"
    assert err.value.message.startswith("this PSBT is of another transaction")


def test_signers_per_input_and_missing():
    from coldsign.psbt.sign import sign

    wallet, result = withdrawal("wsh-sortedmulti")
    nobody = signers(result.psbt, wallet)
    assert nobody.missing == 4 and nobody.signers == {} and not nobody.complete
    by_alice = sign(result.psbt.copy(), result.review, wallet, W.seed("alice")).psbt
    by_bob = sign(result.psbt.copy(), result.review, wallet, W.seed("bob")).psbt
    one = signers(merge(result.psbt, [("alice", by_alice), ("alice again", by_alice)]), wallet)
    alice = W.seed("alice").fingerprint.hex()
    assert one.signers == {alice: [0, 1]} and one.missing == 2
    both = signers(merge(result.psbt, [("bob", by_bob), ("alice", by_alice)]), wallet)
    assert both.complete and set(both.signers) == {alice, W.seed("bob").fingerprint.hex()}
    assert [i.to_json()["required"] for i in both.inputs] == [2, 2]
