"""Fixtures for end-to-end tests on the embedded regtest chain.

One 101-block chain is built per test session and closed; each test that needs a fresh chain
gets its own copy of the datadir (shutil.copytree), so tests never see each other's blocks.

The session chain, in words:
  height 1      coinbase pays 50 BTC to the e2e key's P2WPKH script (the "test coin")
  heights 2-101 coinbases pay the chain's own miner key (heights 2 and above still immature
                for block 102 except height 2, which matures exactly there)
So a block at height 102 may spend the test coin (100 confirmations on top of it).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Coin:
    txid: str
    vout: int
    amount_sat: int
    script_pubkey: bytes


def e2e_private_key():
    """A fixed regtest-only key: secret = SHA256("coldsign e2e test key")."""
    from embit.ec import PrivateKey

    return PrivateKey(hashlib.sha256(b"coldsign e2e test key").digest())


def p2wpkh_script(private_key) -> bytes:
    from embit.script import p2wpkh

    return p2wpkh(private_key.get_public_key()).data


@pytest.fixture(scope="session")
def session_chain_dir(tmp_path_factory) -> Path:
    from coldsign.chain.regtest import RegtestChain

    datadir = tmp_path_factory.mktemp("regtest-session") / "chain"
    with RegtestChain.open(datadir) as chain:
        first = chain.mine(1, to_script=p2wpkh_script(e2e_private_key()))
        rest = chain.mine(100)
        assert all(r.accepted for r in first + rest)
        assert chain.height == 101
    return datadir


@pytest.fixture()
def chain_dir(session_chain_dir, tmp_path) -> Path:
    """A private copy of the 101-block session chain."""
    target = tmp_path / "chain"
    shutil.copytree(session_chain_dir, target)
    return target


@pytest.fixture()
def chain(chain_dir):
    from coldsign.chain.regtest import RegtestChain

    with RegtestChain.open(chain_dir) as opened:
        yield opened


@pytest.fixture()
def test_coin(chain) -> Coin:
    """The 50 BTC coinbase output of block 1, paying the e2e key's P2WPKH script."""
    script = p2wpkh_script(e2e_private_key())
    [coin] = chain.utxos([script])
    assert coin.height == 1 and coin.coinbase
    return Coin(coin.txid, coin.vout, coin.amount_sat, script)


@pytest.fixture()
def e2e_key():
    """The key the session chain's block-1 coinbase pays (see `e2e_private_key`)."""
    return e2e_private_key()


@pytest.fixture()
def spend():
    """Returns `_spend`: builds signed P2WPKH spends (see its docstring)."""
    return _spend


def _spend(coins, outputs, *, key=None, sign_amounts=None) -> bytes:
    """A signed P2WPKH spend of `coins` (each with .txid .vout .amount_sat) to `outputs`
    [(script, sat)]. `sign_amounts` overrides the amounts committed to in the signatures."""
    from embit.script import Script, p2pkh, witness_p2wpkh
    from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

    key = key or e2e_private_key()
    pub = key.get_public_key()
    vin = [TransactionInput(bytes.fromhex(c.txid), c.vout) for c in coins]
    vout = [TransactionOutput(sat, Script(script)) for script, sat in outputs]
    tx = Transaction(version=2, vin=vin, vout=vout, locktime=0)
    amounts = sign_amounts or [c.amount_sat for c in coins]
    for i, amount in enumerate(amounts):
        digest = tx.sighash_segwit(i, p2pkh(pub), amount, SIGHASH.ALL)
        vin[i].witness = witness_p2wpkh(key.sign(digest), pub, SIGHASH.ALL)
    return tx.serialize()
