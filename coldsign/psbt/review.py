"""Review: what a PSBT does, in terms a custodian can check, and every rule it breaks.

`review()` is pure: it takes a parsed PSBT, the network and (optionally) the registered
wallet, and returns a `Review`. `psbt inspect` shows it; `psbt sign` refuses when it holds any
refusal. The same findings serve both, so what inspect warns about is exactly what sign refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coldsign.keys.derive import format_path
from coldsign.limits import LIMITS
from coldsign.network import Network
from coldsign.psbt import scripts as S
from coldsign.psbt.finalize import parse_multisig

HARDENED = 0x80000000
SIGHASH_DEFAULT, SIGHASH_ALL = 0x00, 0x01


@dataclass(frozen=True)
class Finding:
    """One rule's verdict. `refuse` findings stop signing; the others are warnings."""

    code: str
    message: str
    refuse: bool = True
    input: int | None = None
    output: int | None = None

    def to_json(self) -> dict:
        doc = {"code": self.code, "message": self.message,
               "severity": "refusal" if self.refuse else "warning"}
        if self.input is not None:
            doc["input"] = self.input
        if self.output is not None:
            doc["output"] = self.output
        return doc

    @property
    def where(self) -> str:
        if self.input is not None:
            return f"input {self.input}"
        if self.output is not None:
            return f"output {self.output}"
        return "transaction"


@dataclass
class InputReview:
    index: int
    prevout: str
    amount_sat: int | None
    script_pubkey: bytes | None
    script_type: str
    amount_verified: bool
    sighash: int | None
    signatures: int
    required: int
    final: bool
    path: tuple[int, int] | None = None  # (change, index) in the wallet, when the input is ours

    @property
    def ours(self) -> bool:
        return self.path is not None

    def to_json(self) -> dict:
        return {"prevout": self.prevout, "amount_sat": self.amount_sat, "script_type": self.script_type,
                "amount_verified": self.amount_verified, "sighash": sighash_name(self.sighash),
                "signatures": self.signatures, "required": self.required,
                "ours": self.ours, "final": self.final,
                "path": f"{self.path[0]}/{self.path[1]}" if self.path else None}


@dataclass
class OutputReview:
    index: int
    address: str | None
    amount_sat: int
    script_pubkey: bytes
    script_type: str
    change: bool = False
    path: tuple[int, int] | None = None

    def to_json(self) -> dict:
        return {"address": self.address, "amount_sat": self.amount_sat, "change": self.change,
                "script_type": self.script_type,
                "path": f"{self.path[0]}/{self.path[1]}" if self.path else None}


@dataclass
class Review:
    txid: str
    psbt_version: int
    network: Network
    wallet_name: str | None
    inputs: list[InputReview]
    outputs: list[OutputReview]
    fee_sat: int | None
    vsize: int
    vsize_estimated: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def refusals(self) -> list[Finding]:
        return [f for f in self.findings if f.refuse]

    @property
    def fee_rate(self) -> float | None:
        return None if self.fee_sat is None else round(self.fee_sat / self.vsize, 2)

    @property
    def sent_sat(self) -> int:
        """Sats leaving the wallet to others: every output that is not proven change."""
        return sum(o.amount_sat for o in self.outputs if not o.change)

    @property
    def change_sat(self) -> int:
        return sum(o.amount_sat for o in self.outputs if o.change)

    def to_json(self) -> dict:
        return {"txid": self.txid, "psbt_version": self.psbt_version,
                "inputs": [i.to_json() for i in self.inputs],
                "outputs": [o.to_json() for o in self.outputs],
                "fee_sat": self.fee_sat, "vsize": self.vsize, "fee_rate_sat_vb": self.fee_rate,
                "warnings": [f.to_json() for f in self.findings],
                "network": self.network.value, "wallet": self.wallet_name,
                "vsize_estimated": self.vsize_estimated, "sent_sat": self.sent_sat,
                "change_sat": self.change_sat}


def sighash_name(value: int | None) -> str:
    names = {None: "DEFAULT", SIGHASH_DEFAULT: "DEFAULT", SIGHASH_ALL: "ALL", 0x02: "NONE", 0x03: "SINGLE",
             0x81: "ALL|ANYONECANPAY", 0x82: "NONE|ANYONECANPAY", 0x83: "SINGLE|ANYONECANPAY"}
    return names[value] if value in names else f"0x{value:02x}"


# --- the review -------------------------------------------------------------------------------


def review(psbt, network: Network, wallet=None, *, wallet_name: str | None = None,
           allow_high_fee: bool = False) -> Review:
    """Review `psbt` (a coldsign.psbt.codec.Psbt) for `network`, against `wallet` (a
    WalletDescriptor) when given."""
    findings: list[Finding] = []
    inputs = [_review_input(psbt, i, wallet, findings) for i in range(len(psbt.inputs))]
    _check_inputs_together(inputs, wallet, wallet_name, findings)
    highest = max((i.path[1] for i in inputs if i.path), default=0)
    outputs = [_review_output(psbt, o, network, wallet, highest, findings) for o in range(len(psbt.outputs))]
    _check_outputs_together(outputs, findings)
    weight, estimated = _weight(psbt, inputs, outputs, wallet)
    vsize = S.vsize(weight)
    fee = None
    if all(i.amount_sat is not None for i in inputs):
        fee = sum(i.amount_sat for i in inputs) - sum(o.amount_sat for o in outputs)
    result = Review(txid=_final_txid(psbt, inputs), psbt_version=psbt.version, network=network, wallet_name=wallet_name,
                    inputs=inputs, outputs=outputs, fee_sat=fee, vsize=vsize, vsize_estimated=estimated,
                    findings=findings)
    _check_fee(result, allow_high_fee, findings)
    return result


def _review_input(psbt, i: int, wallet, findings: list[Finding]) -> InputReview:
    view = psbt.input(i)
    txid, vout = view.prevout
    spent, verified = _spent_output(view, i, txid, vout, findings)
    amount, script = spent if spent else (None, None)
    kind = S.classify(script) if script is not None else S.UNKNOWN
    if kind == S.P2SH and view.redeem_script is not None and S.classify(view.redeem_script) == S.P2WPKH:
        kind = S.P2SH_P2WPKH
    if kind == S.P2TR and spent is not None:
        verified = True  # BIP-341: a taproot signature commits to every input's amount and script
    elif view.non_witness_utxo is None and spent is not None:
        findings.append(Finding("missing-previous-tx",
                                f"input {i} ({kind}) has no previous transaction (PSBT_IN_NON_WITNESS_UTXO): "
                                "its amount cannot be verified, and a signer that trusts it can be tricked "
                                "into paying a hidden fee", input=i))
    sighash = view.sighash_type
    allowed = (SIGHASH_DEFAULT, SIGHASH_ALL) if kind == S.P2TR else (SIGHASH_ALL,)
    if sighash is not None and sighash not in allowed:
        findings.append(Finding("sighash-not-all",
                                f"input {i} asks for sighash {sighash_name(sighash)}; coldsign signs only "
                                f"{' or '.join(sighash_name(a) for a in allowed)}", input=i))
    path = _input_owner(view, i, script, kind, wallet, findings) if wallet is not None and script else None
    final = view.final_script_sig is not None or view.final_script_witness is not None
    required, signatures = _signature_count(view, kind, wallet if path else None, final)
    return InputReview(index=i, prevout=f"{txid}:{vout}", amount_sat=amount, script_pubkey=script,
                       script_type=kind, amount_verified=verified, sighash=sighash,
                       signatures=signatures, required=required, final=final, path=path)


def _spent_output(view, i: int, txid: str, vout: int, findings: list[Finding]):
    """The output this input spends, and whether its amount is proven by the previous tx."""
    previous = view.non_witness_utxo
    witness_utxo = view.witness_utxo
    if previous is not None:
        previous_txid = view.non_witness_utxo_txid
        if previous_txid != txid:
            findings.append(Finding("previous-tx-mismatch",
                                    f"input {i}: the previous transaction given hashes to "
                                    f"{previous_txid}, not to the spent txid {txid}", input=i))
            return witness_utxo, False
        if vout >= len(previous.vout):
            findings.append(Finding("previous-tx-mismatch",
                                    f"input {i}: the previous transaction has {len(previous.vout)} outputs, "
                                    f"it has no output {vout}", input=i))
            return witness_utxo, False
        out = previous.vout[vout]
        spent = (out.value, out.script_pubkey.data)
        if witness_utxo is not None and tuple(witness_utxo) != spent:
            findings.append(Finding("witness-utxo-mismatch",
                                    f"input {i}: PSBT_IN_WITNESS_UTXO says {witness_utxo[0]} sat to script "
                                    f"{witness_utxo[1].hex()}, the previous transaction says {spent[0]} sat "
                                    f"to {spent[1].hex()}", input=i))
        return spent, True
    if witness_utxo is not None:
        return tuple(witness_utxo), False
    findings.append(Finding("missing-utxo", f"input {i} says nothing about the coin it spends (neither "
                            "PSBT_IN_NON_WITNESS_UTXO nor PSBT_IN_WITNESS_UTXO): amount and script unknown",
                            input=i))
    return None, False


def _claims(view) -> list[tuple[bytes, bytes, tuple[int, ...]]]:
    """(key, fingerprint, path) of every BIP-32 derivation the map carries (ECDSA and taproot)."""
    claims = [(pk, fp, path) for pk, (fp, path) in view.bip32_derivations.items()]
    claims += [(xonly, fp, path) for xonly, (_leaves, fp, path) in view.tap_bip32_derivations.items()]
    return claims


def _wallet_path(wallet, fingerprint: bytes, path: tuple[int, ...], where: str,
                 findings: list[Finding], **at) -> tuple[int, int] | None:
    """(change, index) when `path` is one this wallet uses; else a refusal naming what is off."""
    located = wallet.locate(fingerprint, path)
    if located is not None:
        _key, change, index = located
        if change in (0, 1) and index < HARDENED:
            return change, index
    text = f"[{fingerprint.hex()}/{format_path(path)}]"
    prefixes = [k.origin.path for k in wallet.keys if k.origin.fingerprint == fingerprint]
    if not any(path[:len(p)] == p for p in prefixes):
        why = "its prefix is not the origin path of the wallet's key " + \
              " or ".join(f"{format_path(p)}" for p in prefixes)
    else:
        rest = path[len(next(p for p in prefixes if path[:len(p)] == p)):]
        if len(rest) != 2:
            why = f"the wallet uses exactly two steps after its key (change/index), this path has {len(rest)}"
        elif any(step & HARDENED for step in rest):
            why = "the change and index steps must not be hardened"
        else:
            why = f"change branch {rest[0]} is neither 0 (receive) nor 1 (change)"
    findings.append(Finding("unusual-path", f"{where} claims the wallet's key at {text}, a path the "
                            f"wallet would not use: {why}", **at))
    return None


def _claimed_path(view, wallet, where: str, findings: list[Finding], **at) -> tuple[int, int] | None:
    """(change, index) at which the map's derivations claim the wallet's keys; None when none
    claims them, or when the claim is refused (a finding says why)."""
    fingerprints = {k.origin.fingerprint for k in wallet.keys}
    ours = [(fp, path) for _key, fp, path in _claims(view) if fp in fingerprints]
    if not ours:
        return None
    paths = {_wallet_path(wallet, fp, path, where, findings, **at) for fp, path in ours}
    if None in paths:
        return None
    if len(paths) > 1:
        findings.append(Finding("inconsistent-derivations", f"{where}: the wallet's keys are claimed at "
                                f"different paths ({', '.join(f'{c}/{n}' for c, n in sorted(paths))})", **at))
        return None
    return paths.pop()


def _input_owner(view, i, script, kind, wallet, findings) -> tuple[int, int] | None:
    path = _claimed_path(view, wallet, f"input {i}", findings, input=i)
    if path is None:
        return None
    change, index = path
    expected = wallet.script_pubkey(change, index)
    if expected != script:
        findings.append(Finding("input-script-mismatch", f"input {i} claims the wallet's key at {change}/{index}, "
                                f"but the coin's script {script.hex()} is not what the wallet derives there "
                                f"({expected.hex()})", input=i))
        return None
    for name, given, derived in (("redeem script", view.redeem_script, wallet.redeem_script(change, index)),
                                 ("witness script", view.witness_script, wallet.witness_script(change, index))):
        if given is not None and given != derived:
            findings.append(Finding("input-script-mismatch", f"input {i}: the PSBT's {name} is not the one the "
                                    f"wallet derives at {change}/{index}", input=i))
            return None
    return change, index


def _signature_count(view, kind: str, wallet, final: bool) -> tuple[int, int]:
    required = 1
    if kind == S.P2WSH:
        if wallet is not None and wallet.threshold:
            required = wallet.threshold
        elif view.witness_script and (multisig := parse_multisig(view.witness_script)):
            required = multisig[0]
    if final:
        return required, required
    if kind == S.P2TR:
        return required, 1 if view.tap_key_sig else 0
    return required, len(view.partial_sigs)


def _check_inputs_together(inputs: list[InputReview], wallet, wallet_name, findings) -> None:
    seen: dict[str, int] = {}
    for item in inputs:
        if item.prevout in seen:
            findings.append(Finding("duplicate-input", f"input {item.index} spends {item.prevout} again "
                                    f"(already input {seen[item.prevout]})", input=item.index))
        seen.setdefault(item.prevout, item.index)
    if wallet is None:
        findings.append(Finding("no-wallet", "no wallet given: inputs and change cannot be recognised; every "
                                "output is shown as a payment", refuse=False))
        return
    ours = [i for i in inputs if i.ours]
    if not ours:
        findings.append(Finding("no-wallet-input", f"no input belongs to wallet {wallet_name or ''}".rstrip() +
                                ": nothing here for this signer"))
        return
    for item in inputs:
        if not item.ours:
            findings.append(Finding("foreign-input", f"input {item.index} ({item.prevout}) does not belong to "
                                    f"wallet {wallet_name or ''}".rstrip() +
                                    ": a PSBT must spend from one wallet only", input=item.index))


def _review_output(psbt, o: int, network: Network, wallet, highest_input_index: int,
                   findings: list[Finding]) -> OutputReview:
    view = psbt.output(o)
    script, amount = view.script, view.amount
    kind = S.classify(script)
    result = OutputReview(index=o, address=address_of(script, network), amount_sat=amount,
                          script_pubkey=script, script_type=kind)
    limit = S.dust_limit(script)
    if amount < limit:
        findings.append(Finding("dust-output", f"output {o} pays {amount} sat, below the dust limit of {limit} "
                                f"sat for {kind}: it could never be spent economically", output=o))
    if kind == S.OP_RETURN and amount > 0:
        findings.append(Finding("op-return-value", f"output {o} burns {amount} sat in an OP_RETURN", output=o))
    if wallet is None:
        return result
    path = _claimed_path(view, wallet, f"output {o}", findings, output=o)
    if path is None:
        return result
    change, index = path
    if index > highest_input_index + LIMITS.change_index_max_gap:
        findings.append(Finding("unusual-path", f"output {o} claims index {index}, more than "
                                f"{LIMITS.change_index_max_gap} above the highest index ({highest_input_index}) "
                                "the wallet used in this PSBT's inputs: coins sent there may never be found",
                                output=o))
        return result
    if wallet.script_pubkey(change, index) != script:
        findings.append(Finding("foreign-change", f"output {o} claims the wallet's key at {change}/{index}, but "
                                "its script is not what the wallet derives there (e.g. the wallet's key with "
                                "foreign cosigners): it is an external payment, not change", output=o))
        return result
    result.change, result.path = True, (change, index)
    return result


def _check_outputs_together(outputs: list[OutputReview], findings: list[Finding]) -> None:
    op_returns = [o.index for o in outputs if o.script_type == S.OP_RETURN]
    if len(op_returns) > 1:
        findings.append(Finding("multiple-op-return", f"outputs {', '.join(map(str, op_returns))} are all "
                                "OP_RETURN; standard transactions carry at most one", output=op_returns[1]))
    if not outputs:
        findings.append(Finding("no-outputs", "the transaction has no outputs: everything would go to fees"))


def _check_fee(result: Review, allow_high_fee: bool, findings: list[Finding]) -> None:
    fee = result.fee_sat
    if fee is None:
        return
    if fee < 0:
        findings.append(Finding("negative-fee", f"outputs total {-fee} sat more than the inputs: the transaction "
                                "is invalid (or an input amount is wrong)"))
        return
    base = result.sent_sat or sum(i.amount_sat or 0 for i in result.inputs)
    share = fee / base if base else 0.0
    rate = fee / result.vsize
    too_high = []
    if share > 0.10:
        too_high.append(f"{share:.1%} of the {base} sat leaving the wallet (limit 10%)")
    if rate > 1000:
        too_high.append(f"{rate:.1f} sat/vB (limit 1000)")
    if too_high:
        text = f"fee of {fee} sat is " + " and ".join(too_high)
        if allow_high_fee:
            findings.append(Finding("high-fee", text + "; allowed by --allow-high-fee", refuse=False))
        else:
            findings.append(Finding("high-fee", text + "; pass --allow-high-fee if this is intended"))
    elif share > 0.05:
        findings.append(Finding("fee-above-5-percent", f"fee of {fee} sat is {share:.1%} of the {base} sat "
                                "leaving the wallet", refuse=False))


def _weight(psbt, inputs: list[InputReview], outputs: list[OutputReview], wallet) -> tuple[int, bool]:
    """The transaction's weight: exact for final inputs, estimated from the script type otherwise."""
    weights, has_witness, estimated = [], [], False
    for item in inputs:
        if item.final:
            view = psbt.input(item.index)
            script_sig = view.final_script_sig or b""
            witness = view.final_script_witness or []
            size = S.compact_size_len
            weights.append((36 + size(len(script_sig)) + len(script_sig) + 4) * 4 +
                           (size(len(witness)) + sum(size(len(w)) + len(w) for w in witness) if witness else 0))
            has_witness.append(bool(witness))
            continue
        estimated = True
        kind = item.script_type
        has_witness.append(kind in (S.P2WPKH, S.P2SH_P2WPKH, S.P2WSH, S.P2TR))
        if kind == S.P2WSH:
            ws = psbt.input(item.index).witness_script or (wallet.witness_script(*item.path) if item.path else b"")
            weights.append(S.input_weight(kind, threshold=item.required, witness_script_len=len(ws or b"")))
        elif kind == S.P2TR and item.sighash == SIGHASH_ALL:
            weights.append(S.input_weight(kind) + 1)
        else:
            weights.append(S.input_weight(kind))
    segwit = any(has_witness)
    if segwit:  # an input without witness still has its empty witness count in a segwit tx
        weights = [w if wit else w + 1 for w, wit in zip(weights, has_witness)]
    return S.tx_weight(weights, [o.script_pubkey for o in outputs], segwit=segwit), estimated


def _final_txid(psbt, inputs: list[InputReview]) -> str:
    """The txid the transaction will have once signed. Witness data does not count, but a
    P2SH-wrapped segwit input's scriptSig (the push of its redeem script) does."""
    wrapped = [(i.index, psbt.input(i.index).redeem_script) for i in inputs if i.script_type == S.P2SH_P2WPKH]
    if not wrapped:
        return psbt.txid()
    from embit.script import Script

    tx = psbt.unsigned_tx()
    for index, redeem in wrapped:
        tx.vin[index].script_sig = Script(bytes([len(redeem)]) + redeem)
    return tx.txid().hex()


def address_of(script: bytes, network: Network) -> str | None:
    """The address of an output script on `network`, or None (OP_RETURN, non-standard)."""
    from embit.script import Script

    try:
        return Script(script).address(network.embit)
    except Exception:  # noqa: BLE001 - embit raises several types for scripts without an address
        return None
