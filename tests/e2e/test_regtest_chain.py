"""The embedded regtest chain against Bitcoin Core's consensus code (libbitcoinkernel).

ARCHITECTURE §3's quick check: the coinbase of block 1 pays a P2WPKH key (the e2e key), is
buried 100 blocks, and a signed spend of it in block 102 is accepted: the active chain grows.
The same block with a wrong signature, a double spend or an overspend is refused and the tip
stays; so is a block without its witness commitment or with a wrong BIP34 height. Each refusal
is checked against the kernel's own reject reason, so a block refused for another cause fails.

Then the output index: it follows funding and spending, survives reopening, and reconciles
with the chain after a simulated crash on either side (index behind, index ahead, index lost).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from coldsign.chain import blocks as B
from coldsign.chain.regtest import RegtestChain
from coldsign.errors import EnvironmentProblem, NotFound

pytestmark = pytest.mark.e2e

# A P2WPKH destination with no known key: hash160 = 20 bytes of 0x22.
SINK = bytes.fromhex("0014" + "22" * 20)
FEE = 10_000


def _txid_of(raw: bytes) -> str:
    from embit.transaction import Transaction

    return Transaction.parse(raw).txid().hex()


def _tamper(raw: bytes, change) -> bytes:
    block = B.RegtestBlock.parse(raw)
    change(block)
    return block.seal().serialize()


# -- ARCHITECTURE §3 quick check -----------------------------------------------------------

def test_signed_spend_of_buried_coinbase_is_accepted(chain, test_coin, spend):
    tx = spend([test_coin], [(SINK, test_coin.amount_sat - FEE)])
    tip_before = chain.tip_hash

    result = chain.submit_block(chain.build_block([tx]))

    assert result.accepted, result.reason
    assert result.height == chain.height == 102
    assert chain.tip_hash == result.block_hash != tip_before
    assert chain.block_hash(101) == tip_before
    # the coinbase collected the fee on top of the subsidy (Core refuses it if it took more)
    [miner_coin] = [u for u in chain.utxos([chain.miner_script]) if u.height == 102]
    assert miner_coin.amount_sat == B.block_subsidy(102) + FEE


def _refused(chain, raw: bytes, expected_reason: str):
    tip, height = chain.tip_hash, chain.height
    result = chain.submit_block(raw)
    assert not result.accepted
    assert expected_reason in result.reason, result.reason
    assert (chain.height, chain.tip_hash) == (height, tip)
    assert result.height == height
    return result


def test_wrong_signature_is_refused_and_tip_stays(chain, test_coin, spend):
    # signed over an amount one satoshi off: a well-formed signature that does not verify
    tx = spend([test_coin], [(SINK, test_coin.amount_sat - FEE)],
               sign_amounts=[test_coin.amount_sat + 1])
    result = _refused(chain, chain.build_block([tx]), "script-verify-flag-failed")
    assert result.reason.startswith("CONSENSUS")


def test_double_spend_is_refused_and_tip_stays(chain, test_coin, spend):
    first = spend([test_coin], [(SINK, test_coin.amount_sat - FEE)])
    second = spend([test_coin], [(SINK, test_coin.amount_sat - 2 * FEE)])
    _refused(chain, chain.build_block([first, second]), "bad-txns-inputs-missingorspent")


def test_overspend_is_refused_and_tip_stays(chain, test_coin, spend):
    tx = spend([test_coin], [(SINK, test_coin.amount_sat + 1)])
    _refused(chain, chain.build_block([tx]), "bad-txns-in-belowout")


def test_block_without_witness_commitment_is_refused(chain, test_coin, spend):
    tx = spend([test_coin], [(SINK, test_coin.amount_sat - FEE)])

    def strip_commitment(block):
        cb = block.coinbase
        cb.vout = [o for o in cb.vout
                   if not o.script_pubkey.data.startswith(b"\x6a\x24" + B.WITNESS_COMMITMENT_HEADER)]
        assert len(cb.vout) == 1
        cb.vin[0].witness.items = []

    _refused(chain, _tamper(chain.build_block([tx]), strip_commitment), "unexpected-witness")


def test_block_with_wrong_witness_commitment_is_refused(chain, test_coin, spend):
    tx = spend([test_coin], [(SINK, test_coin.amount_sat - FEE)])

    def corrupt(block):
        out = block.coinbase.vout[1]
        out.script_pubkey.data = out.script_pubkey.data[:-1] + bytes([out.script_pubkey.data[-1] ^ 1])

    _refused(chain, _tamper(chain.build_block([tx]), corrupt), "bad-witness-merkle-match")


@pytest.mark.parametrize("height_claimed", [101, 103])
def test_block_with_wrong_bip34_height_is_refused(chain, height_claimed):
    def wrong_height(block):
        block.coinbase.vin[0].script_sig.data = B.coinbase_script_sig(height_claimed)

    _refused(chain, _tamper(chain.build_block(), wrong_height), "bad-cb-height")


def test_coinbase_paying_more_than_subsidy_plus_fees_is_refused(chain):
    def overpay(block):
        block.coinbase.vout[0].value += 1

    _refused(chain, _tamper(chain.build_block(), overpay), "bad-cb-amount")


def test_block_not_on_the_tip_is_refused(chain):
    stale = chain.build_block(to_script=SINK)  # differs from the block mined next
    tip = chain.mine(1)[0]
    assert tip.accepted
    result = chain.submit_block(stale)  # same parent as the new tip: a side branch
    assert not result.accepted
    assert result.reason == "not connected: the block does not extend the active tip"
    assert (result.height, chain.tip_hash) == (102, tip.block_hash)
    assert chain.utxos([SINK]) == []  # nothing of the side branch reached the index
    assert chain.submit_block(chain.build_block()).accepted


def test_duplicate_block_is_not_accepted_twice(chain):
    raw = chain.build_block()
    assert chain.submit_block(raw).accepted
    again = chain.submit_block(raw)
    assert not again.accepted and again.reason.startswith("duplicate")
    assert chain.height == 102


# -- the index -------------------------------------------------------------------------------

def test_fund_then_spend_follows_the_index_and_survives_reopen(chain_dir, e2e_key, spend):
    from embit.script import p2wpkh

    script = p2wpkh(e2e_key.get_public_key()).data
    with RegtestChain.open(chain_dir) as chain:
        coin = chain.fund(script, 1_234_567)
        assert coin.height == chain.height == 102
        utxos = chain.utxos([script])
        assert coin in utxos and len(utxos) == 2  # the funded coin and block 1's coinbase
        raw = chain.get_transaction(coin.txid)
        assert _txid_of(raw) == coin.txid
        spend_tx = spend([coin], [(SINK, coin.amount_sat - FEE)])
        result = chain.broadcast(spend_tx)
        assert result.accepted and result.height == 103
        assert coin not in chain.utxos([script])
        [sink_coin] = chain.utxos([SINK])
        assert (sink_coin.txid, sink_coin.amount_sat, sink_coin.height) == (
            result.txids[1], coin.amount_sat - FEE, 103)
        answers = (chain.utxos([script, SINK]), chain.miner_balance())
    with RegtestChain.open(chain_dir) as chain:
        assert chain.height == 103
        assert (chain.utxos([script, SINK]), chain.miner_balance()) == answers
        assert chain.get_transaction(coin.txid) == raw
        assert chain.get_transaction(result.txids[1]) == spend_tx


def test_get_transaction_of_unknown_txid_is_not_found(chain):
    with pytest.raises(NotFound, match="is not in the regtest chain"):
        chain.get_transaction("ab" * 32)


def test_crash_before_indexing_is_reconciled_on_open(chain_dir, monkeypatch):
    class SimulatedCrash(Exception):
        pass

    def crash(self, *args):
        raise SimulatedCrash("process died after the kernel accepted the block")

    with RegtestChain.open(chain_dir) as chain:
        monkeypatch.setattr(RegtestChain, "_index_block", crash)
        with pytest.raises(SimulatedCrash):
            chain.fund(SINK, 70_000)
        monkeypatch.undo()
        assert chain.height == 102  # the kernel has the block …
        assert chain.utxos([SINK]) == []  # … the index does not
        tip = chain.tip_hash
    with RegtestChain.open(chain_dir) as chain:
        assert (chain.height, chain.tip_hash) == (102, tip)
        [coin] = chain.utxos([SINK])
        assert (coin.amount_sat, coin.height) == (70_000, 102)
        assert chain._idx.tip() == (102, tip)


def test_lost_index_is_rebuilt_from_the_chain(chain_dir):
    with RegtestChain.open(chain_dir) as chain:
        coin = chain.fund(SINK, 80_000)
        before = (chain.utxos([SINK, chain.miner_script]), chain.miner_balance())
    for name in os.listdir(chain_dir):
        if name.startswith("index.sqlite"):
            os.remove(chain_dir / name)
    with RegtestChain.open(chain_dir) as chain:
        assert (chain.utxos([SINK, chain.miner_script]), chain.miner_balance()) == before
        assert coin in chain.utxos([SINK])


def test_index_ahead_of_the_chain_is_rolled_back(chain_dir, tmp_path):
    """A killed process can leave the index holding a block the kernel never flushed."""
    ahead = tmp_path / "ahead"
    shutil.copytree(chain_dir, ahead)
    with RegtestChain.open(ahead) as chain:
        chain.fund(SINK, 90_000)  # block 102 in the copy only
    for name in ("index.sqlite",):
        shutil.copy(ahead / name, chain_dir / name)  # the copy's index, one block ahead
    with RegtestChain.open(chain_dir) as chain:
        assert chain.height == 101
        assert chain.utxos([SINK]) == []
        assert chain._idx.tip() == (101, chain.tip_hash)
        assert chain.fund(SINK, 1_000).height == 102


def test_killed_process_leaves_index_and_chain_agreeing(chain_dir):
    """A real kill (os._exit, no close): whatever the kernel kept, the index agrees on open."""
    child = textwrap.dedent(f"""
        import os
        from coldsign.chain.regtest import RegtestChain
        chain = RegtestChain.open({str(chain_dir)!r})
        chain.fund(bytes.fromhex({SINK.hex()!r}), 60_000)
        os._exit(0)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    with RegtestChain.open(chain_dir) as chain:
        assert chain._idx.tip() == (chain.height, chain.tip_hash)
        funded = chain.utxos([SINK])
        assert [c.amount_sat for c in funded] == ([60_000] if chain.height == 102 else [])
        assert chain.fund(SINK, 5_000).height == chain.height


def test_datadir_held_by_another_process_is_an_environment_problem(chain_dir):
    with RegtestChain.open(chain_dir):
        child = ("from coldsign.chain.regtest import RegtestChain\n"
                 "from coldsign.errors import EnvironmentProblem\n"
                 f"try:\n    RegtestChain.open({str(chain_dir)!r})\n"
                 "except EnvironmentProblem as e:\n    print(e.message)\n")
        done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                              timeout=60)
        assert done.stdout.strip() == "the regtest chain is in use by another process"
        with pytest.raises(EnvironmentProblem, match="in use by another process"):
            RegtestChain.open(chain_dir)


def test_miner_key_file_is_private(chain_dir):
    mode = os.stat(chain_dir / "miner.key").st_mode & 0o777
    assert mode == 0o600


def test_fund_mines_maturing_blocks_when_the_miner_has_no_mature_coin(tmp_path):
    with RegtestChain.open(tmp_path / "fresh") as chain:
        assert chain.height == 0
        coin = chain.fund(SINK, 100_000)
        assert chain.height >= 101 and coin.height == chain.height
        assert chain.utxos([SINK]) == [coin]


def test_fast_mining_keeps_timestamps_valid_and_near_the_clock(chain):
    """300 blocks in the same second: each is above the median time past, and the tip's time
    stays far inside Core's 2-hour "time-too-new" window."""
    frozen = int(chain._entry(101).block_header.timestamp.timestamp())
    chain.clock = lambda: frozen
    results = chain.mine(300)
    assert all(r.accepted for r in results) and chain.height == 401
    times = [int(chain._entry(h).block_header.timestamp.timestamp()) for h in range(101, 402)]
    assert all(t >= frozen for t in times)
    assert times[-1] - frozen < 120


def test_fund_many_pays_every_output_in_one_block(chain_dir):
    from coldsign.errors import BadInput

    scripts = [bytes([0x00, 0x20]) + bytes([n]) * 32 for n in range(1, 4)]  # three P2WSH scripts
    with RegtestChain.open(chain_dir) as chain:
        coins = chain.fund_many([(s, 10_000 * (n + 1)) for n, s in enumerate(scripts)])
        assert [c.vout for c in coins] == [0, 1, 2] and len({c.txid for c in coins}) == 1
        assert all(c.height == chain.height == 102 for c in coins)
        assert sorted(chain.utxos(scripts), key=lambda c: c.vout) == coins
        assert [c.amount_sat for c in coins] == [10_000, 20_000, 30_000]
        with pytest.raises(BadInput) as err:
            chain.fund_many([])
        assert err.value.message == "fund 1 to 2500 outputs in one transaction, not 0"
        assert chain.height == 102
