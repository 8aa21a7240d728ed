"""The regtest miner's wallet: its key file and the payments the faucet makes from its coins.

The miner key guards regtest coins only; it is kept in the chain's datadir (mode 0600) and
collects the block rewards that `RegtestChain.fund` pays out. Payments spend P2WPKH coins at
a fixed fee rate and return change unless it is dust.
"""

from __future__ import annotations

import os
from pathlib import Path

from coldsign.chain.index import Utxo
from coldsign.errors import BadInput
from coldsign.keys.secret import Secret
from coldsign.store import atomic_write, read_limited

# Fee rate of the transactions `fund` builds. Regtest has no mempool policy; 2 sat/vB keeps
# the numbers realistic.
FUND_FEE_RATE_SAT_VB = 2
# Outputs below this go to the fee instead of a change output (P2WPKH dust at 3 sat/vB).
DUST_SAT = 294


def fee_for(inputs: int, payments: int = 1) -> int:
    # P2WPKH in (68 vB) x n; the payments and the change counted as P2WSH-sized outputs (43 vB, the
    # largest coldsign's wallets use), 11 vB overhead (plus up to 2 for a large output count).
    return FUND_FEE_RATE_SAT_VB * (13 + 68 * inputs + 43 * (payments + 1))


def load_or_create_miner_key(path: Path) -> Secret:
    """The miner's 32-byte secret, created once (0600). Regtest only: it guards no real coins."""
    from embit.ec import PrivateKey

    if not path.exists():
        atomic_write(path, os.urandom(32).hex() + "\n", mode=0o600)
    text = read_limited(path, 200, what="regtest miner key").decode("ascii", "replace").strip()
    try:
        secret = bytes.fromhex(text)
        PrivateKey(secret)  # validates the range; the object is dropped at once
    except Exception:  # noqa: BLE001 - any malformation means the same thing here
        raise BadInput("the regtest miner key is not 32 bytes of hex", where=str(path),
                       hint="delete the file to make a new miner key (regtest coins only)"
                       ) from None
    return Secret(secret)


def pay_from_miner(key, coins: list[Utxo], payments: list[tuple[bytes, int]], *, change_script: bytes):
    """A signed transaction paying each (script_pubkey, sat) of `payments` from the miner's P2WPKH
    `coins` (signed with `key`, an embit PrivateKey), change back to `change_script` unless
    it is dust."""
    from embit.script import Script, p2pkh, witness_p2wpkh
    from embit.transaction import SIGHASH, Transaction, TransactionInput, TransactionOutput

    pub = key.get_public_key()
    fee = fee_for(len(coins), len(payments))
    change = sum(c.amount_sat for c in coins) - sum(amount for _, amount in payments) - fee
    vin = [TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=0xFFFFFFFD) for c in coins]
    vout = [TransactionOutput(amount, Script(script)) for script, amount in payments]
    if change >= DUST_SAT:
        vout.append(TransactionOutput(change, Script(change_script)))
    tx = Transaction(version=2, vin=vin, vout=vout, locktime=0)
    script_code = p2pkh(pub)
    for i, coin in enumerate(coins):
        digest = tx.sighash_segwit(i, script_code, coin.amount_sat, SIGHASH.ALL)
        vin[i].witness = witness_p2wpkh(key.sign(digest), pub, SIGHASH.ALL)
    return tx
