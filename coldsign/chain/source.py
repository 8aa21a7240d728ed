"""The one small interface the watch half asks a chain through (Bitcoin Core RPC, Esplora, the
embedded regtest chain), and the source URL that picks one.

A source answers in scripts, not addresses: the watch half derives the wallet's scriptPubKeys and
asks which were ever used (for the gap limit) and which coins they hold now. Every failure to reach
a source, or an answer that makes no sense, is an `EnvironmentProblem` (exit 7) naming the source
(never its password); a refusal by the network to accept a transaction is `Refused` (exit 4) with
the node's reason.

Source URLs (`--source`):
  bitcoind://USER:PASS@HOST:PORT[/wallet/NAME]   Bitcoin Core JSON-RPC, user and password
  bitcoind://HOST:PORT?cookie=/path/.cookie       Bitcoin Core JSON-RPC, cookie file
  esplora://HOST[:PORT][/PATH]  (esploras:// for HTTPS)   Esplora REST
  regtest                                          the embedded regtest chain of the home folder
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class Tip:
    height: int
    block_hash: str  # display hex


@dataclass(frozen=True)
class Unspent:
    """A coin a script holds now."""

    txid: str               # display hex
    vout: int
    amount_sat: int
    script_pubkey: bytes
    height: int | None      # block height, None while unconfirmed (in the mempool)

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


@dataclass(frozen=True)
class ScriptActivity:
    """What the chain knows about one script: whether it ever received anything (the gap limit
    counts scripts that never did), the transactions that touched it, and the coins it holds now."""

    script_pubkey: bytes
    used: bool
    txids: tuple[str, ...] = ()
    unspent: tuple[Unspent, ...] = field(default=())


@dataclass(frozen=True)
class Acceptance:
    """A mempool acceptance test: allowed, or the node's reason (e.g. "min relay fee not met")."""

    allowed: bool
    reason: str | None = None


class ChainSource(Protocol):
    description: str            # for messages: "Bitcoin Core at 127.0.0.1:18443" (never a password)
    # Whether `ScriptActivity.txids` include the transactions that spent from the script (Esplora,
    # the regtest chain). Bitcoin Core lists only what paid a script: False there, and the sync
    # does not take a spender it cannot find for nonsense. A source without the attribute: True.
    lists_spends: bool

    def tip(self) -> Tip: ...

    def scan(self, scripts: Sequence[bytes]) -> list[ScriptActivity]:
        """One ScriptActivity per script, in the same order."""
        ...

    def transaction(self, txid: str) -> bytes:
        """The raw transaction (NotFound when the source does not know it)."""
        ...

    def tx_height(self, txid: str) -> int | None:
        """The height of the block that holds the transaction in the source's best chain; None
        while it is unconfirmed, or when the source does not know it. The watch half asks this of
        a broadcast withdrawal that pays the wallet no change (no coin of its own to see)."""
        ...

    def fee_rate(self, target_blocks: int) -> float:
        """The estimated fee rate in sat/vB to confirm within `target_blocks` blocks."""
        ...

    def test_accept(self, tx: bytes) -> Acceptance: ...

    def broadcast(self, tx: bytes) -> str:
        """Send the transaction; returns its txid. Refused (exit 4) with the reason when rejected."""
        ...

    def close(self) -> None: ...


def send_accepted(source: ChainSource, tx: bytes) -> str:
    """The mempool acceptance test first, then the broadcast: the txid. Refused `not-accepted` (exit
    4, nothing sent) with the node's reason when the test says no."""
    from coldsign.errors import Refused

    acceptance = source.test_accept(tx)
    if not acceptance.allowed:
        raise Refused(f"the chain source would not accept the transaction: {acceptance.reason}",
                      where=source.description, code="not-accepted")
    return source.broadcast(tx)
