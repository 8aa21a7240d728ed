"""The embedded regtest chain: blocks built by coldsign, validated by Bitcoin Core's own
consensus code (libbitcoinkernel through py-bitcoinkernel), on a folder on disk.

Used for rehearsals, demos and tests. The datadir holds:
  blocks/ chainstate/   the kernel's block files and UTXO set
  index.sqlite          coldsign's output index (`coldsign.chain.index`)
  miner.key             the regtest-only miner key (mode 0600), which collects block rewards
  coldsign.lock         held (flock) while a `RegtestChain` is open: one user at a time

NOTE: the kernel loses blocks accepted since its last flush if the process is killed (it
flushes when closed), while the index commits every block at once. `open` therefore rolls the
index back to the last block the chain still has, then re-reads any blocks the chain has and
the index lacks, so the two never disagree.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from coldsign.amounts import MAX_MONEY_SAT
from coldsign.chain import blocks as B
from coldsign.chain.index import ChainIndex, Utxo
from coldsign.chain.kernel_log import KernelLog, reject_detail
from coldsign.chain.miner import fee_for, load_or_create_miner_key, pay_from_miner
from coldsign.errors import (BadInput, EnvironmentProblem, NotFound, Refused,
                             TransactionDecodeError, VerificationFailed)
from coldsign.keys.secret import Secret
from coldsign.limits import LIMITS

__all__ = ["BlockResult", "RegtestChain", "Utxo"]

MINER_KEY_FILE = "miner.key"
INDEX_FILE = "index.sqlite"
LOCK_FILE = "coldsign.lock"
# How many blocks `fund` may mine to mature enough coinbase coins before it gives up.
FUND_MAX_MATURING_BLOCKS = 1_000
# Outputs of one faucet transaction: 2,500 P2WSH outputs weigh ~430 kWU, well inside a block.
FUND_MAX_OUTPUTS = 2_500


@dataclass(frozen=True)
class BlockResult:
    """What became of a submitted block. `height` is the tip height after submitting."""

    accepted: bool
    height: int
    block_hash: str
    reason: str | None = None
    txids: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"accepted": self.accepted, "height": self.height, "block_hash": self.block_hash,
                "reason": self.reason, "txids": list(self.txids)}


class RegtestChain:
    """A regtest chain in `datadir`, opened exclusively. Use as a context manager."""

    def __init__(self, datadir: Path, *, _token: object = None):
        if _token is not _OPEN_TOKEN:
            raise TypeError("use RegtestChain.open(datadir)")
        self.datadir = Path(datadir)
        self._lock_fd: int | None = None
        self._chainman = None
        self._index: ChainIndex | None = None
        self._miner_key: Secret | None = None
        self._checked: dict[str, tuple[str, str]] = {}
        self.clock = time.time  # seconds since the epoch; tests may set a fixed clock

    # -- life cycle ----------------------------------------------------------------------

    @classmethod
    def open(cls, datadir: Path | str) -> "RegtestChain":
        """Open (creating when missing) the chain in `datadir`; EnvironmentProblem if held."""
        chain = cls(Path(datadir), _token=_OPEN_TOKEN)
        try:
            chain._open()
        except BaseException:
            chain.close()
            raise
        return chain

    def _open(self) -> None:
        try:
            self.datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise EnvironmentProblem(f"cannot create the regtest datadir: {e.strerror}",
                                     where=str(self.datadir)) from None
        self._lock()
        self._miner_key = load_or_create_miner_key(self.datadir / MINER_KEY_FILE)
        self._chainman = self._load_kernel()
        try:
            self._index = ChainIndex(self.datadir / INDEX_FILE)
        except Exception as e:  # sqlite3.DatabaseError, unsupported schema
            raise EnvironmentProblem(f"cannot open the chain index: {e}",
                                     where=str(self.datadir / INDEX_FILE),
                                     hint="delete index.sqlite; it is rebuilt from the chain "
                                          "on the next open") from None
        self.reconcile()

    def _lock(self) -> None:
        fd = os.open(self.datadir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EnvironmentProblem("the regtest chain is in use by another process",
                                     where=str(self.datadir),
                                     hint="wait for the other coldsign command to finish, "
                                          "or close the program holding it") from None
        self._lock_fd = fd

    def _load_kernel(self):
        import pbk

        callbacks = pbk.ValidationInterfaceCallbacks(block_checked=self._on_block_checked)
        try:
            return pbk.load_chainman(self.datadir, pbk.ChainType.REGTEST,
                                     validation_callbacks=callbacks)
        except RuntimeError as e:
            raise EnvironmentProblem(f"libbitcoinkernel could not load the chain: {e}",
                                     where=str(self.datadir),
                                     hint="check that no other program (e.g. bitcoind) uses "
                                          "this folder and that it holds a regtest chain"
                                     ) from None

    def close(self) -> None:
        """Flush and release the chain (the kernel writes its state when destroyed)."""
        if self._chainman is not None:
            chainman, self._chainman = self._chainman, None
            chainman.__exit__(None, None, None)
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RegtestChain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._chainman is not None else "closed"
        return f"<RegtestChain {self.datadir} {state}>"

    # -- chain facts ---------------------------------------------------------------------

    @property
    def _kernel(self):
        if self._chainman is None:
            raise EnvironmentProblem("the regtest chain is closed", where=str(self.datadir))
        return self._chainman

    def _entry(self, height: int):
        return self._kernel.get_active_chain().block_tree_entries[height]

    @property
    def height(self) -> int:
        return self._kernel.get_active_chain().height

    @property
    def tip_hash(self) -> str:
        return str(self._entry(self.height).block_hash)

    def block_hash(self, height: int) -> str:
        if not 0 <= height <= self.height:
            raise NotFound(f"no block at height {height}; the tip is at {self.height}")
        return str(self._entry(height).block_hash)

    def _recent_times(self) -> list[int]:
        tip = self.height
        return [int(self._entry(h).block_header.timestamp.timestamp())
                for h in range(max(0, tip - B.MEDIAN_TIME_SPAN + 1), tip + 1)]

    @property
    def miner_script(self) -> bytes:
        """The miner's P2WPKH scriptPubKey: block rewards go here unless told otherwise."""
        from embit.script import p2wpkh

        return p2wpkh(self._miner_private().get_public_key()).data

    def _miner_private(self):
        from embit.ec import PrivateKey

        assert self._miner_key is not None
        # NOTE: an embit PrivateKey's repr prints the WIF; it never leaves this module's frames
        # (and `pay_from_miner`'s, which signs the faucet's payments with it).
        return PrivateKey(self._miner_key.reveal())

    @property
    def _idx(self) -> ChainIndex:
        if self._index is None:
            raise EnvironmentProblem("the regtest chain is closed", where=str(self.datadir))
        return self._index

    # -- index ---------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Make the index agree with the active chain; returns how many blocks were re-read.

        Rolls the index back to the highest block both agree on (a killed process can leave
        the index ahead of the kernel), then indexes the chain's blocks above it.
        """
        idx, tip = self._idx, self.height
        agreed = min(tip, idx.tip()[0]) if idx.tip() else -1
        while agreed >= 0 and idx.block_hash_at(agreed) != str(self._entry(agreed).block_hash):
            agreed -= 1
        idx.rollback_to(agreed)
        for height in range(agreed + 1, tip + 1):
            entry = self._entry(height)
            raw = bytes(self._kernel.blocks[entry])
            idx.add_block(height, str(entry.block_hash), B.RegtestBlock.parse(raw))
        return tip - agreed

    def _index_block(self, height: int, block_hash: str, block: B.RegtestBlock) -> None:
        self._idx.add_block(height, block_hash, block)

    def utxos(self, scripts: Iterable[bytes]) -> list[Utxo]:
        """Unspent, confirmed outputs paying any of `scripts` (coinbase ones may be immature)."""
        return self._idx.utxos(scripts)

    def outputs_paid_to(self, scripts: Iterable[bytes]):
        """Every confirmed output ever paid to any of `scripts`, spent or not (the watch half's
        "was this address ever used")."""
        return self._idx.outputs_paid_to(scripts)

    def get_transaction(self, txid: str) -> bytes:
        """The raw transaction (with witness) from the index; NotFound if never confirmed."""
        if not re.fullmatch(r"[0-9a-fA-F]{64}", txid or ""):
            raise BadInput(f"a txid is 64 hex digits, got {txid!r}")
        raw = self._idx.transaction(txid.lower())
        if raw is None:
            raise NotFound(f"transaction {txid} is not in the regtest chain",
                           hint="broadcast it first, or check the txid")
        return raw

    def miner_balance(self) -> tuple[int, int]:
        """(total, spendable in the next block) of the miner's unspent coins, in sat."""
        coins = self.utxos([self.miner_script])
        nxt = self.height + 1
        return (sum(c.amount_sat for c in coins),
                sum(c.amount_sat for c in coins if c.mature_at(nxt)))

    # -- blocks --------------------------------------------------------------------------

    def build_block(self, transactions: Sequence[bytes] = (),
                    to_script: bytes | None = None) -> bytes:
        """A sealed block template on the current tip holding `transactions`, in order.

        The coinbase pays the subsidy plus the fees the index can account for: a fee counts
        only coins the index knows unspent (each once), and is never below zero, so a block
        with a double spend or an overspend is refused for that, not for its coinbase.
        """
        txs = [parse_transaction(raw, i) for i, raw in enumerate(transactions)]
        tip = self.height
        block = B.assemble_block(
            prev_hash=bytes(self._entry(tip).block_hash), height=tip + 1,
            timestamp=B.next_timestamp(self._recent_times(), int(self.clock())),
            payout_script=self.miner_script if to_script is None else bytes(to_script),
            transactions=txs, fees=self._fees(txs))
        return block.serialize()

    def _fees(self, txs) -> int:
        created: dict[tuple[str, int], int] = {}
        consumed: set[tuple[str, int]] = set()
        total = 0
        for tx in txs:
            value_in = 0
            for inp in tx.vin:
                outpoint = (inp.txid.hex(), inp.vout)
                if outpoint in consumed:
                    continue
                consumed.add(outpoint)
                if outpoint in created:
                    value_in += created[outpoint]
                else:
                    coin = self._idx.unspent_output(*outpoint)
                    value_in += coin.amount_sat if coin else 0
            txid = tx.txid().hex()
            for vout, out in enumerate(tx.vout):
                created[(txid, vout)] = out.value
            total += max(0, value_in - sum(out.value for out in tx.vout))
        return total

    def _on_block_checked(self, _user_data, block, state) -> None:
        self._checked[str(block.block_hash)] = (state.validation_mode.name,
                                                state.block_validation_result.name)

    def submit_block(self, raw: bytes) -> BlockResult:
        """Hand a block to the kernel; accepted only when the active tip advanced to it.

        An accepted block is indexed before this returns.
        """
        import pbk

        try:
            block = B.RegtestBlock.parse(bytes(raw))
            kernel_block = pbk.Block(bytes(raw))
        except (ValueError, RuntimeError) as e:
            raise BadInput(f"not a block: {e}") from None
        block_hash = block.hash
        txids = [tx.txid().hex() for tx in block.transactions]
        before = self.tip_hash
        self._checked.pop(block_hash, None)
        KernelLog.start()
        try:
            self._kernel.process_block(kernel_block)
        except pbk.ProcessBlockException:
            pass  # refused before connecting; the reason is in the state and the log
        finally:
            lines = KernelLog.stop()
        height = self.height
        if self.tip_hash == block_hash and before != block_hash:
            self._index_block(height, block_hash, block)
            return BlockResult(True, height, block_hash, None, txids)
        mode, result = self._checked.pop(block_hash, ("UNCHECKED", "UNSET"))
        if before == block_hash:
            reason = "duplicate: the block is already the tip"
        else:
            detail = reject_detail(lines)
            if detail:
                reason = f"{result}: {detail}"
            elif mode in ("VALID", "UNCHECKED"):
                reason = "not connected: the block does not extend the active tip"
            else:
                reason = result
        return BlockResult(False, height, block_hash, reason, txids)

    def mine(self, blocks: int = 1, to_script: bytes | None = None,
             transactions: Sequence[bytes] = ()) -> list[BlockResult]:
        """Mine `blocks` blocks; `transactions` go into the first. Stops at a refused block."""
        if blocks < 1:
            raise BadInput(f"mine at least one block, not {blocks}")
        results = []
        for n in range(blocks):
            raw = self.build_block(transactions if n == 0 else (), to_script)
            result = self.submit_block(raw)
            results.append(result)
            if not result.accepted:
                break
        return results

    def broadcast(self, tx: bytes) -> BlockResult:
        """Confirm `tx` in a new block at once; a refused tx gives accepted=False."""
        return self.mine(1, transactions=[tx])[0]

    # -- the faucet ----------------------------------------------------------------------

    def fund(self, script_pubkey: bytes, amount_sat: int) -> Utxo:
        """Pay `amount_sat` to `script_pubkey` from the miner's mature coins, confirmed in one
        new block; mines maturing blocks first when the miner lacks spendable coins."""
        return self.fund_many([(script_pubkey, amount_sat)])[0]

    def fund_many(self, payments: Sequence[tuple[bytes, int]]) -> list[Utxo]:
        """Pay each (script_pubkey, sat) from the miner's mature coins in one transaction,
        confirmed in one new block; the coins in the order of `payments`."""
        if not 1 <= len(payments) <= FUND_MAX_OUTPUTS:
            raise BadInput(f"fund 1 to {FUND_MAX_OUTPUTS} outputs in one transaction, not {len(payments)}")
        for script_pubkey, amount_sat in payments:
            if not 0 < amount_sat <= MAX_MONEY_SAT:
                raise BadInput(f"amount must be between 1 sat and 21,000,000 BTC, got {amount_sat} sat")
            if not script_pubkey:
                raise BadInput("cannot fund an empty scriptPubKey")
        payments = [(bytes(script), amount) for script, amount in payments]
        coins = self._spendable_coins_for(sum(amount for _, amount in payments), len(payments))
        tx = pay_from_miner(self._miner_private(), coins, payments, change_script=self.miner_script)
        result = self.broadcast(tx.serialize())
        if not result.accepted:
            raise VerificationFailed(f"the kernel refused the funding transaction: {result.reason}",
                                     hint="this is a bug in coldsign's regtest faucet")
        txid = tx.txid().hex()
        return [Utxo(txid=txid, vout=n, amount_sat=amount, script_pubkey=script, height=result.height,
                     coinbase=False) for n, (script, amount) in enumerate(payments)]

    def _spendable_coins_for(self, amount_sat: int, payments: int = 1) -> list[Utxo]:
        mined = 0
        while True:
            nxt = self.height + 1
            coins = [c for c in self.utxos([self.miner_script]) if c.mature_at(nxt)]
            coins.sort(key=lambda c: (-c.amount_sat, c.height, c.txid, c.vout))
            chosen, total = [], 0
            for coin in coins:
                chosen.append(coin)
                total += coin.amount_sat
                if total >= amount_sat + fee_for(len(chosen), payments):
                    return chosen
            if mined >= FUND_MAX_MATURING_BLOCKS:
                raise Refused(f"the miner cannot pay {amount_sat} sat even after mining "
                              f"{mined} maturing blocks", hint="ask for a smaller amount")
            # Mine in steps: each block matures one more coinbase once 100 deep.
            step = max(1, min(50, FUND_MAX_MATURING_BLOCKS - mined))
            mined += len(self.mine(step))


_OPEN_TOKEN = object()


def parse_transaction(raw: bytes, index: int):
    from embit.base import EmbitError
    from embit.transaction import Transaction

    raw = bytes(raw)
    if len(raw) > LIMITS.transaction_max_bytes:
        raise TransactionDecodeError(f"transaction is larger than the limit of "
                                     f"{LIMITS.transaction_max_bytes} bytes",
                                     where=f"transaction {index}")
    try:
        tx = Transaction.parse(raw)
        if tx.serialize() != raw:  # embit accepts a truncated locktime; a round trip does not
            raise ValueError("truncated or non-canonical encoding")
        return tx
    except (EmbitError, ValueError, IndexError, TypeError) as e:
        raise TransactionDecodeError(f"not a transaction: {e or type(e).__name__}",
                                     where=f"transaction {index}",
                                     hint="pass the raw transaction bytes (with witness)") from None
