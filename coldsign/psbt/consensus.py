"""Bitcoin Core's own script interpreter (libbitcoinkernel) as the judge of every signature.

An adapter: pbk is imported here, lazily, and nowhere in the pure core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class InputVerdict:
    index: int
    ok: bool
    message: str


def verify_inputs(tx: bytes, spent: Sequence[tuple[int, bytes]], indexes: Iterable[int]) -> list[InputVerdict]:
    """Run the script interpreter with every consensus flag (P2SH, DERSIG, NULLDUMMY, CLTV, CSV,
    WITNESS, TAPROOT) on the given inputs of the serialized transaction `tx`, where `spent[i]` is
    (amount_sat, script_pubkey) of the coin input i spends."""
    import pbk
    from pbk.script import PrecomputedTransactionData

    kernel_tx = pbk.Transaction(tx)
    outputs = [pbk.TransactionOutput(pbk.ScriptPubkey(script), amount) for amount, script in spent]
    precomputed = PrecomputedTransactionData(kernel_tx, outputs)
    verdicts = []
    for i in indexes:
        amount, script = spent[i]
        try:
            ok = pbk.ScriptPubkey(script).verify(amount, kernel_tx, precomputed, i, pbk.ScriptVerificationFlags.ALL)
            message = "valid" if ok else "the script interpreter rejected the signature"
        except pbk.ScriptVerifyException as exc:
            ok, message = False, f"the script interpreter could not run: {exc.status.name}"
        verdicts.append(InputVerdict(i, bool(ok), message))
    return verdicts
