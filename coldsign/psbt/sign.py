"""Signing: seed-derived keys sign each input the review proved is the wallet's.

`sign()` refuses (Refused, exit 4) when the review holds any refusal, signs what it can, and
reports each input: signed, or skipped with the reason. It works on a copy; the caller writes
the result only after `check_signatures()` (libbitcoinkernel) accepted every new signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coldsign.errors import Refused, VerificationFailed
from coldsign.keys.derive import SECP256K1_N, AccountSigner
from coldsign.psbt import scripts as S
from coldsign.psbt.fields import PSBT_IN_REDEEM_SCRIPT, PSBT_IN_WITNESS_SCRIPT
from coldsign.psbt.review import SIGHASH_ALL, SIGHASH_DEFAULT, Review
from coldsign.psbt.sighash import SegwitV0Sighash

SINGLE_KEY = (S.P2WPKH, S.P2SH_P2WPKH, S.P2TR)


@dataclass(frozen=True)
class NewSignature:
    input: int
    pubkey: bytes        # 33-byte key (ECDSA) or 32-byte tweaked output key (taproot)
    signature: bytes     # as stored in the PSBT (with the sighash byte when there is one)
    kind: str


@dataclass
class SignReport:
    psbt: object                                  # the signed copy
    signed: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    signatures: list[NewSignature] = field(default_factory=list)
    consensus_checked: list[int] = field(default_factory=list)   # inputs completed and run by the interpreter
    signature_checked: list[int] = field(default_factory=list)   # multisig: signature checked against digest+key

    def to_json(self) -> dict:
        return {"signed_inputs": len(self.signed), "signed": self.signed,
                "skipped": [{"index": i, "reason": r} for i, r in self.skipped],
                "consensus_checked": self.consensus_checked, "signature_checked": self.signature_checked}


def refuse_if_needed(review: Review) -> None:
    refusals = review.refusals
    if refusals:
        raise Refused(f"refusing to sign: {len(refusals)} rule(s) say no "
                      f"({', '.join(sorted({f.code for f in refusals}))})",
                      code="refused", details=[f.to_json() for f in refusals],
                      hint="inspect the PSBT with `coldsign psbt inspect` and ask the coordinator for a correct one")


def account_signers(wallet, seed) -> dict[int, AccountSigner]:
    """The seed's signer for each wallet key it holds, by the key's position in the wallet."""
    root = seed.root.reveal()
    signers = {n: AccountSigner(root, key.origin.fingerprint, key.origin.path, key.xpub)
               for n, key in enumerate(wallet.keys) if key.origin.fingerprint == seed.fingerprint}
    if not signers:
        raise Refused(f"the seed (fingerprint {seed.fingerprint.hex()}) holds none of the wallet's keys "
                      f"({', '.join(k.origin.fingerprint.hex() for k in wallet.keys)})",
                      code="seed-not-in-wallet", hint="use the seed of one of the wallet's cosigners")
    return signers


def sign(psbt, review: Review, wallet, seed) -> SignReport:
    """Sign `psbt` (not modified) with `seed`'s keys of `wallet`; `review` must be of this PSBT."""
    refuse_if_needed(review)
    session = _Signing(psbt, review, wallet, account_signers(wallet, seed))
    report = SignReport(psbt=session.signed)
    pending: dict[int, list[NewSignature]] = {}
    for item in review.inputs:
        if not item.ours:
            made, reason = [], "not an input of this wallet"
        elif item.final:
            made, reason = [], "already final"
        elif item.script_type == S.P2TR:
            made, reason = session.taproot(item)
        elif item.script_type in (S.P2WPKH, S.P2SH_P2WPKH, S.P2WSH):
            made, reason = session.segwit_v0(item)
        else:
            made, reason = [], f"coldsign does not sign {item.script_type} inputs"
        if made:
            pending[item.index] = made
        else:
            report.skipped.append((item.index, reason))
    for index, made in session.complete_ecdsa(pending).items():
        report.signatures += made
        report.signed.append(index)
    report.skipped.sort()
    if not report.signed:
        raise Refused("nothing was signed: " + "; ".join(f"input {i}: {r}" for i, r in report.skipped),
                      code="nothing-signed", details=[{"code": "skipped", "index": i, "message": r}
                                                      for i, r in report.skipped])
    return report


class _Signing:
    """One signing pass: the signed copy, the digest caches and the seed's account signers."""

    def __init__(self, psbt, review: Review, wallet, signers: dict[int, AccountSigner]) -> None:
        self.signed = psbt.copy()
        self.tx = psbt.unsigned_tx(shared=True)   # read only: digests are computed from it
        self.segwit_v0_digests = SegwitV0Sighash(self.tx)
        self.review, self.wallet, self.signers = review, wallet, signers
        self._taproot_prevouts = None
        self._ecdsa_jobs: list[tuple[bytes, bytes]] = []   # (digest, secret), signed together

    def taproot(self, item) -> tuple[list[NewSignature], str]:
        """Key-path signature into PSBT_IN_TAP_KEY_SIG (never a final witness: that is the finalizer's)."""
        from embit.script import Script
        from embit.util import secp256k1

        signer = self.signers.get(0)
        if signer is None:
            return [], "the seed does not hold this input's key"
        view = self.signed.input(item.index)
        if view.tap_key_sig is not None:
            return [], "already signed"
        if self._taproot_prevouts is None:  # BIP-341 commits to every input's script and amount
            self._taproot_prevouts = ([Script(r.script_pubkey) for r in self.review.inputs],
                                      [r.amount_sat for r in self.review.inputs])
        change, index = item.path
        sighash = SIGHASH_DEFAULT if item.sighash is None else item.sighash
        digest = self.tx.sighash_taproot(item.index, *self._taproot_prevouts, sighash=sighash)
        secret = _taproot_output_secret(signer.secret_at(change, index),
                                        self.wallet.keys[0].pubkey_at(change, index))
        sig = secp256k1.schnorrsig_sign(digest, secret)
        sig = sig if sighash == SIGHASH_DEFAULT else sig + bytes([sighash])
        view.set_tap_key_sig(sig)
        return [NewSignature(item.index, item.script_pubkey[2:], sig, item.script_type)], ""

    def segwit_v0(self, item) -> tuple[list[NewSignature], str]:
        """ECDSA partial signatures (SIGHASH_ALL) by each of the seed's keys in the input's script,
        queued: `complete_ecdsa` signs them all at once."""
        i, (change, index) = item.index, item.path
        view, scope = self.signed.input(i), self.signed.inputs[i]
        if item.script_type == S.P2WSH:
            script_code = self.wallet.witness_script(change, index)
            if view.witness_script is None:
                scope.set(PSBT_IN_WITNESS_SCRIPT, b"", script_code)
        else:
            program = item.script_pubkey[2:]
            if item.script_type == S.P2SH_P2WPKH:
                redeem = self.wallet.redeem_script(change, index)
                program = redeem[2:]
                if view.redeem_script is None:
                    scope.set(PSBT_IN_REDEEM_SCRIPT, b"", redeem)
            script_code = b"\x76\xa9\x14" + program + b"\x88\xac"
        digest = self.segwit_v0_digests.digest(i, script_code, item.amount_sat, SIGHASH_ALL)
        have, queued = view.partial_sigs, []
        for n, signer in self.signers.items():
            pubkey = self.wallet.keys[n].pubkey_at(change, index)
            if pubkey not in have:
                self._ecdsa_jobs.append((digest, signer.secret_at(change, index)))
                queued.append(NewSignature(i, pubkey, b"", item.script_type))   # signature below
        return queued, "already signed by this seed's key(s)"

    def complete_ecdsa(self, pending: dict[int, list[NewSignature]]) -> dict[int, list[NewSignature]]:
        """Sign every queued ECDSA job at once (on every core) and put the signatures in place."""
        from coldsign.keys.ecdsa import sign_der

        ders = iter(sign_der(self._ecdsa_jobs))
        self._ecdsa_jobs = []
        done = {}
        for index in sorted(pending):
            made = []
            for new in pending[index]:
                if not new.signature:
                    new = NewSignature(new.input, new.pubkey, next(ders) + bytes([SIGHASH_ALL]), new.kind)
                    self.signed.input(index).add_partial_sig(new.pubkey, new.signature)
                made.append(new)
            done[index] = made
        return done


def _taproot_output_secret(secret: bytes, internal_pubkey: bytes) -> bytes:
    """BIP-341 key-path secret: the internal key negated to even Y, plus the TapTweak (no script tree)."""
    from embit.hashes import tagged_hash

    d = int.from_bytes(secret, "big")
    if internal_pubkey[0] == 0x03:
        d = SECP256K1_N - d
    tweak = int.from_bytes(tagged_hash("TapTweak", internal_pubkey[1:]), "big")
    return ((d + tweak) % SECP256K1_N).to_bytes(32, "big")


def check_signatures(report: SignReport, review: Review) -> None:
    """Before anything is written: every new signature is checked.

    Where the wallet completes the input alone (single key), a finalized copy of the input runs
    through libbitcoinkernel's interpreter with the spent outputs and every flag (TAPROOT
    included). Multisig inputs cannot be completed by one signer: each new signature is checked
    against the input's BIP-143 digest and key; `psbt finalize` runs the whole input through
    libbitcoinkernel once enough signatures exist. Raises VerificationFailed; writes nothing.
    """
    from embit.script import Script, Witness
    from embit.util import secp256k1

    from coldsign.psbt.consensus import verify_inputs
    from coldsign.psbt.finalize import final_fields

    signed = report.psbt
    single = sorted({s.input for s in report.signatures if s.kind in SINGLE_KEY})
    failures = []
    if single:
        tx = signed.unsigned_tx()
        for i in single:
            view = signed.input(i)
            script_sig, witness = final_fields(view, i, review.inputs[i].script_pubkey)
            tx.vin[i].script_sig = Script(script_sig or b"")
            tx.vin[i].witness = Witness(witness or [])
        spent = [(r.amount_sat, r.script_pubkey) for r in review.inputs]
        for verdict in verify_inputs(tx.serialize(), spent, single):
            if not verdict.ok:
                failures.append({"index": verdict.index, "code": "consensus", "message": verdict.message})
        report.consensus_checked = single
    multi = [s for s in report.signatures if s.kind not in SINGLE_KEY]
    if multi:
        # The digest is recomputed by a second, independent implementation (embit's) so a fault
        # in coldsign's BIP-143 code cannot vouch for itself.
        tx = signed.unsigned_tx()
        for s in multi:
            item = review.inputs[s.input]
            digest = tx.sighash_segwit(s.input, Script(signed.input(s.input).witness_script), item.amount_sat,
                                       SIGHASH_ALL)
            try:
                ok = bool(secp256k1.ecdsa_verify(secp256k1.ecdsa_signature_parse_der(s.signature[:-1]), digest,
                                                 secp256k1.ec_pubkey_parse(s.pubkey)))
            except ValueError:  # a malformed signature or key is a failed check
                ok = False
            if not ok:
                failures.append({"index": s.input, "code": "signature", "message": "the new signature does not "
                                 "verify against the input's BIP-143 digest and key"})
    report.signature_checked = sorted({s.input for s in multi})
    if failures:
        raise VerificationFailed(f"{len(failures)} new signature(s) failed verification; nothing was written",
                                 code="signature-check", details=failures,
                                 hint="this is a serious fault: do not use this PSBT; report it")
