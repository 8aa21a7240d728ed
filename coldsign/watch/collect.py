"""Collect the custodians' signatures into a stored withdrawal, and say who signed (pure).

Signed PSBTs come back from each custodian in any order, some twice. Each is first checked to be
of the very same unsigned transaction (else it is refused naming its file), then merged with the
BIP-174 combiner (`coldsign.psbt.codec.combine`: a signature already held is kept, so duplicates
change nothing). Who signed is read per input from the wallet's own keys: an ECDSA partial
signature counts for the cosigner whose key the wallet derives at the input's path; a taproot
key-path signature counts for the wallet's single key. An input is complete with M signatures
(the multisig threshold, else 1).

When every input is complete, `finalize_checked` finalizes and runs every input through Bitcoin
Core's script interpreter (libbitcoinkernel, `coldsign.psbt.consensus`, imported lazily); a
rejection is VerificationFailed (exit 5) naming the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from coldsign.errors import BadInput, VerificationFailed


@dataclass(frozen=True)
class InputSigners:
    index: int
    signed_by: tuple[str, ...]       # fingerprints (hex) of the wallet keys that signed
    required: int

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.signed_by))

    def to_json(self) -> dict:
        return {"index": self.index, "signed_by": list(self.signed_by), "required": self.required,
                "missing": self.missing}


@dataclass(frozen=True)
class Collection:
    psbt: object
    inputs: tuple[InputSigners, ...]

    @property
    def signers(self) -> dict[str, list[int]]:
        """fingerprint -> the input indexes it signed (fingerprints in the wallet's key order)."""
        found: dict[str, list[int]] = {}
        for item in self.inputs:
            for fingerprint in item.signed_by:
                found.setdefault(fingerprint, []).append(item.index)
        return found

    @property
    def missing(self) -> int:
        """Signatures still missing, summed over the inputs (0: ready to finalize)."""
        return sum(item.missing for item in self.inputs)

    @property
    def complete(self) -> bool:
        return self.missing == 0


def merge(base, incoming: Sequence[tuple[str, object]]):
    """`base` with the signatures of every (name, psbt) in `incoming` merged in; BadInput naming
    the first one that is of another transaction."""
    from coldsign.psbt.codec import combine

    expected = _unsigned_id(base)
    for name, psbt in incoming:
        if _unsigned_id(psbt) != expected:
            raise BadInput(f"this PSBT is of another transaction ({psbt.txid()}), not of the withdrawal "
                           f"({base.txid()})", where=name, hint="collect only PSBTs signed from this withdrawal")
    return combine([base, *(p for _, p in incoming)])


def _unsigned_id(psbt) -> tuple:
    """What makes two PSBTs (of either version) the same unsigned transaction."""
    tx = psbt.unsigned_tx(shared=True) if psbt.version == 0 else psbt.unsigned_tx()
    return (psbt.version, tx.txid())


def signers(psbt, wallet) -> Collection:
    """Per input, which of the wallet's keys signed and how many signatures it needs."""
    from coldsign.psbt.review import review

    result = review(psbt, wallet.network, wallet)
    items = []
    for item in result.inputs:
        view = psbt.input(item.index)
        required = wallet.threshold or 1
        if item.final:
            signed = tuple(k.origin.fingerprint.hex() for k in wallet.keys[:required])
        elif item.path is None:
            raise BadInput(f"input {item.index} ({item.prevout}) is not this wallet's")
        elif wallet.kind == "tr":
            signed = (wallet.keys[0].origin.fingerprint.hex(),) if view.tap_key_sig else ()
        else:
            partial = view.partial_sigs
            signed = tuple(k.origin.fingerprint.hex() for k in wallet.keys
                           if k.pubkey_at(*item.path) in partial)
        items.append(InputSigners(item.index, signed, required))
    return Collection(psbt, tuple(items))


def finalize_checked(psbt):
    """Finalize every input and check each with libbitcoinkernel; `Finalized` (tx, txid, spent)."""
    from coldsign.psbt.consensus import verify_inputs
    from coldsign.psbt.finalize import finalize

    final = finalize(psbt)
    failed = [v for v in verify_inputs(final.tx, final.spent, range(len(final.spent))) if not v.ok]
    if failed:
        raise VerificationFailed(f"libbitcoinkernel rejects input(s) {', '.join(str(v.index) for v in failed)}; "
                                 "nothing was stored", code="consensus",
                                 details=[{"index": v.index, "code": "consensus", "message": v.message}
                                          for v in failed],
                                 hint="a cosigner's signature is bad: ask that custodian to sign again")
    return final


def confirmed(txid: str, coins: Sequence, tx_height: int | None = None) -> bool:
    """Whether `txid` is confirmed: the wallet's synced coins show an output of it (its change) in a
    block, or the chain source gave the height of its block (`tx_height`, from
    `ChainSource.tx_height`: how a withdrawal without change, which leaves the wallet no coin of
    its own, is seen confirmed)."""
    return tx_height is not None or any(c.txid == txid and c.height is not None for c in coins)
