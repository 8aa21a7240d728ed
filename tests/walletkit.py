"""Test wallets, described in words.

Three cosigners with fixed test seeds (never use them for real coins):
  alice: BIP-39 words of entropy 0x01 * 16 (12 words), no passphrase
  bob:   entropy 0x02 * 16
  carol: entropy 0x03 * 16
Accounts on regtest (coin type 1): wpkh at 84h/1h/0h, sh(wpkh) at 49h/1h/0h, tr at 86h/1h/0h,
wsh 2-of-3 sortedmulti at 48h/1h/0h/2h (one key from each cosigner), and the same three keys in
wsh 2-of-3 multi, unsorted, in the order carol, alice, bob (at receive 0/0–0/2 and change 1/0–1/1
that order is not the sorted one, so its scripts differ from the sortedmulti wallet's). Every
descriptor is `/<0;1>/*`: receive branch 0, change branch 1.
"""

from __future__ import annotations

from pathlib import Path

from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey
from coldsign.network import Network
from coldsign.psbt.create import Coin, create_psbt

H = 0x80000000
COSIGNERS = ("alice", "bob", "carol")
ACCOUNT_PATHS = {
    "wpkh": (84 | H, 1 | H, 0 | H),
    "sh-wpkh": (49 | H, 1 | H, 0 | H),
    "tr": (86 | H, 1 | H, 0 | H),
    "wsh-sortedmulti": (48 | H, 1 | H, 0 | H, 2 | H),
    "wsh-multi": (48 | H, 1 | H, 0 | H, 2 | H),
}
MULTI_ORDER = ("carol", "alice", "bob")     # the unsorted wsh-multi's key order


def mnemonic(name: str) -> str:
    from embit import bip39

    return bip39.mnemonic_from_bytes(bytes([COSIGNERS.index(name) + 1]) * 16)


def seed(name: str) -> SeedKey:
    return SeedKey.from_mnemonic(Secret(mnemonic(name)))


def key_expression(name: str, kind: str) -> str:
    """`[fingerprint/path]tpub.../<0;1>/*` of the cosigner's account for `kind`."""
    from coldsign.keys.export import account_key_expression

    return account_key_expression(seed(name), ACCOUNT_PATHS[kind], Network.REGTEST)


def descriptor(kind: str) -> str:
    if kind == "wpkh":
        return f"wpkh({key_expression('alice', kind)})"
    if kind == "sh-wpkh":
        return f"sh(wpkh({key_expression('alice', kind)}))"
    if kind == "tr":
        return f"tr({key_expression('alice', kind)})"
    if kind == "wsh-sortedmulti":
        keys = ",".join(key_expression(n, kind) for n in COSIGNERS)
        return f"wsh(sortedmulti(2,{keys}))"
    if kind == "wsh-multi":
        keys = ",".join(key_expression(n, kind) for n in MULTI_ORDER)
        return f"wsh(multi(2,{keys}))"
    raise ValueError(kind)


def signers_of(kind: str) -> tuple[str, ...]:
    """Who signs a withdrawal: alice alone, or alice and bob for a 2-of-3."""
    return ("alice", "bob") if kind in ("wsh-sortedmulti", "wsh-multi") else ("alice",)


def wallet(kind: str):
    from coldsign.wallet.descriptor import WalletDescriptor

    return WalletDescriptor.parse(descriptor(kind), Network.REGTEST)


def write_mnemonic(folder: Path, name: str) -> Path:
    path = folder / f"{name}-words.txt"
    path.write_text(mnemonic(name) + "\n")
    path.chmod(0o600)
    return path


def fund(chain, wallet_descriptor, amounts: list[int]) -> list[Coin]:
    """Pay each amount to receive address i of the wallet; the coins, with previous transactions."""
    coins = []
    for i, amount in enumerate(amounts):
        script = wallet_descriptor.script_pubkey(0, i)
        utxo = chain.fund(script, amount)
        coins.append(Coin(utxo.txid, utxo.vout, utxo.amount_sat, script, 0, i,
                          previous_tx=chain.get_transaction(utxo.txid)))
    return coins


# An external destination: P2WPKH of a key outside every test wallet.
EXTERNAL_SCRIPT = bytes.fromhex("0014") + bytes(range(20))


def previous_tx(script: bytes, amount: int, salt: int) -> bytes:
    """A made-up previous transaction whose output 0 pays `amount` to `script` (no chain needed)."""
    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    return Transaction(vin=[TransactionInput(salt.to_bytes(32, "big"), 0)],
                       vout=[TransactionOutput(amount, Script(script))]).serialize()


def coin(wallet_descriptor, change: int, index: int, amount: int = 100_000, *, salt: int | None = None,
         script: bytes | None = None) -> Coin:
    """A coin of `amount` at change/index (or paying `script`), with its made-up previous tx."""
    from embit.transaction import Transaction

    script = script or wallet_descriptor.script_pubkey(change, index)
    raw = previous_tx(script, amount, salt if salt is not None else index + 1)
    return Coin(Transaction.parse(raw).txid().hex(), 0, amount, script, change, index, previous_tx=raw)


def honest(kind: str = "wpkh", **overrides):
    """(wallet, unsigned PSBT): coins at receive 0/0 and 0/1 of 100,000 sat each, 150,000 sat to
    EXTERNAL_SCRIPT, change to 1/0, 2 sat/vB. Keyword arguments replace coins, payments, fee_rate,
    change_index."""
    wallet_descriptor = wallet(kind)
    coins = overrides.pop("coins", None) or [coin(wallet_descriptor, 0, 0), coin(wallet_descriptor, 0, 1)]
    payments = overrides.pop("payments", None) or [(EXTERNAL_SCRIPT, 150_000)]
    args = {"fee_rate": 2, "change_index": 0, **overrides}
    return wallet_descriptor, create_psbt(wallet_descriptor, coins, payments, **args)
