"""`coldsign psbt inspect | sign | combine | finalize | broadcast`."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, rich_console, settings_of
from coldsign.cli.psbt_qr import QRAnswer, decoded, scan_input
from coldsign.cli.qr_receive import CameraOpt, DecoderName, DecoderOpt, ImagesOpt, VideoOpt
from coldsign.cli.qr_send import DensityOpt, QRFormat
from coldsign.cli.secrets import KeystoreOpt, MnemonicFileOpt, PassphraseFileOpt, PasswordFileOpt
from coldsign.errors import BadInput, PSBTDecodeError, UsageProblem, VerificationFailed
from coldsign.limits import LIMITS
from coldsign.store import atomic_write, read_limited

app = typer.Typer(no_args_is_help=True, help="Review, sign, combine, finalize and broadcast PSBTs.")

PSBT_MAGIC = b"psbt\xff"


def read_psbt(path: Path):
    """Read once (bounded), decode binary/base64/hex. Returns (psbt, raw bytes, was_binary)."""
    from coldsign.psbt.codec import decode_psbt

    raw = read_limited(path, LIMITS.psbt_max_bytes, what="PSBT file")
    try:
        psbt = decode_psbt(raw)
    except PSBTDecodeError as err:
        err.where = err.where or str(path)
        raise
    return psbt, raw, raw.startswith(PSBT_MAGIC)


def write_psbt(path: Path, psbt, binary: bool) -> tuple[bytes, str]:
    data = psbt.serialize()
    out = data if binary else base64.b64encode(data) + b"\n"
    atomic_write(path, out)
    return out, hashlib.sha256(out).hexdigest()


def pick_wallet(settings, name: str | None, psbt, *, required: bool):
    """The registration named, or the one registered wallet whose keys the PSBT's inputs claim."""
    from coldsign.wallet import registry

    if name:
        return registry.load(settings.home, name)
    fingerprints = set()
    for i in range(len(psbt.inputs)):
        view = psbt.input(i)
        fingerprints |= {fp for fp, _ in view.bip32_derivations.values()}
        fingerprints |= {fp for _, fp, _ in view.tap_bip32_derivations.values()}
    matches = [r for r in registry.list_wallets(settings.home)
               if fingerprints & {k.origin.fingerprint for k in r.descriptor.keys}]
    if len(matches) == 1:
        return matches[0]
    if required or len(matches) > 1:
        names = ", ".join(r.name for r in matches) or "none"
        raise UsageProblem(f"say which wallet this PSBT spends from (registered wallets matching its keys: {names})",
                           hint="pass --wallet NAME; register it first with `coldsign wallet register`")
    return None


def network_for(settings, registration):
    if registration is not None and settings.network is not None and settings.network != registration.network:
        raise UsageProblem(f"wallet {registration.name} is registered on {registration.network.value}, "
                           f"not {settings.network.value}", hint="drop --network or use the right wallet")
    return settings.require_network(registration.network if registration else None)


WalletOpt = Annotated[Optional[str], typer.Option("--wallet", help="registered wallet name")]


@app.command()
def inspect(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="PSBT file: binary, base64 or hex")],
    wallet: WalletOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Show what a PSBT does: coins spent, payments, change, fee, and every rule it breaks.

    Example: coldsign --network regtest psbt inspect withdrawal.psbt --wallet vault --json
    """
    from coldsign.console import render_review
    from coldsign.psbt.review import review

    settings = settings_of(ctx, json_flag)
    psbt, _raw, _binary = read_psbt(file)
    registration = pick_wallet(settings, wallet, psbt, required=False)
    network = network_for(settings, registration)
    result = review(psbt, network, registration.descriptor if registration else None,
                    wallet_name=registration.name if registration else None)
    emit(settings, result.to_json(), lambda: render_review(result))


@app.command()
def sign(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="PSBT file: binary, base64 or hex")],
    out: Annotated[Path, typer.Option("--out", help="where to write the signed PSBT")],
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    wallet: WalletOpt = None,
    allow_high_fee: Annotated[bool, typer.Option("--allow-high-fee", help="sign although the fee is above "
                              "10% of the amount sent or 1,000 sat/vB")] = False,
    keystore_name: KeystoreOpt = None,
    password_file: PasswordFileOpt = None,
    request_file: Annotated[Optional[Path], typer.Option("--request", help="signing request bundle (request, "
                            "approvals, PSBT) to evaluate against the policy; FILE may then be '-'")] = None,
    policy_file: Annotated[Optional[Path], typer.Option("--policy", help="the policy expected to decide (must "
                           "be the installed one when a policy is installed)")] = None,
    images: ImagesOpt = None,
    video: VideoOpt = None,
    camera: CameraOpt = None,
    decoder: DecoderOpt = DecoderName.zxing,
    frames_dir: Annotated[Optional[Path], typer.Option("--frames-dir", help="also write the signed PSBT as "
                          "animated QR frames (frame-0001.png … and frames.txt) to this folder")] = None,
    qr: Annotated[bool, typer.Option("--qr", help="also show the signed PSBT as animated QR in the terminal "
                  "(q stops)")] = False,
    cycles: Annotated[Optional[int], typer.Option("--cycles", min=1, help="with --qr: stop after this many "
                      "cycles of the frames (default: until q)")] = None,
    full_psbt: Annotated[bool, typer.Option("--full-psbt", help="with --frames-dir/--qr: send the whole signed "
                         "PSBT back, not only the signatures (for a coordinator that cannot combine)")] = False,
    qr_format: Annotated[QRFormat, typer.Option("--qr-format", help="ur (default) or bbqr, for --frames-dir "
                         "and --qr")] = QRFormat.ur,
    density: DensityOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Review, then sign every input of the wallet with the seed's keys; each new signature is checked
    by libbitcoinkernel before anything is written. Refusals exit 4 and write nothing.

    The seed comes from --mnemonic-file (or typed words) or from an encrypted --keystore.

    Across the air gap by light: FILE '-' with --images, --video or --camera scans the PSBT, or
    the signing request bundle (then no --request), from animated QR; --frames-dir and/or --qr
    answer as animated QR (--qr-format ur or bbqr): only the signatures and the transaction they
    sign (a PSBT the coordinator combines with its own; --full-psbt sends the whole signed PSBT).
    The ceremony log then says the PSBT came by QR and records the export (format, frames, SHA-256).

    Under a policy (installed in the home folder, or --policy FILE) a signing request bundle is
    required (--request): it is evaluated before the seed is read; a refusal is recorded in the
    signer's ledger and exits 4 listing every failed check. FILE must be the bundle's PSBT, or '-'
    to sign the PSBT the bundle carries. The signing is recorded (nonce, amount, chain tip) before
    the signed PSBT is written.

    With an active ceremony log (`coldsign log open`), every step is logged, signed by the identity
    key of the same seed: PSBT received, review shown, approvals and policy decision, signatures
    produced (before the signed PSBT is written). A refusal is logged too, so the seed is then read
    even for a refused PSBT, only to derive the identity key: no Bitcoin key is derived.

    Example: coldsign --network regtest psbt sign withdrawal.psbt --wallet vault --mnemonic-file /media/seed.txt --out signed.psbt

    Example: coldsign --network regtest psbt sign withdrawal.psbt --wallet vault --keystore treasury-1 --out signed.psbt

    Example: coldsign --network regtest psbt sign - --request withdrawal.bundle --keystore treasury-1 --out signed.psbt --json

    Example: coldsign --network regtest psbt sign - --images 'camera/*.png' --keystore treasury-1 --out signed.psbt --frames-dir answer/
    """
    from coldsign.console import render_review, render_sign_report
    from coldsign.cli.secrets import check_seed_options, load_seed
    from coldsign.psbt.review import review
    from coldsign.psbt.sign import check_signatures, refuse_if_needed
    from coldsign.psbt.sign import sign as sign_psbt
    from coldsign.ceremony import events
    from coldsign.ceremony.session import (CeremonySession, identity_key, policy_payloads, produced_outputs,
                                           review_digest)
    from coldsign.errors import ColdsignError, Refused
    from coldsign.psbt.codec import decode_psbt, signatures_only

    settings = settings_of(ctx, json_flag)
    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    if cycles is not None and not qr:
        raise UsageProblem("--cycles goes with --qr")
    if full_psbt and not (qr or frames_dir):
        raise UsageProblem("--full-psbt goes with --frames-dir or --qr (the --out file always holds the whole PSBT)")
    answer = QRAnswer(frames_dir, qr, qr_format.value, density.value if density else None, stderr=settings.json,
                      cycles=cycles)
    session = CeremonySession.active_in(settings.home)      # None: no ceremony log, nothing is logged
    if session is not None:
        session.log.check_not_torn()                         # a torn log refuses before any secret is read
    scanned = scan_input(file, images, video, camera, decoder.value, request_file is not None)
    seed = None
    try:
        gate = _PolicyGate.open(settings, request_file, policy_file,
                                scanned if scanned is not None and scanned.kind == "bundle" else None)
        try:
            if scanned is not None and scanned.kind == "psbt":
                psbt, raw, binary = decoded(scanned, decode_psbt), scanned.data, True
            elif gate is not None and str(file) == "-":
                psbt, binary = gate.bundle_psbt(), True
                raw = gate.bundle.psbt
            else:
                psbt, raw, binary = read_psbt(file)
            answer.check_terminal(psbt)
            if session is not None:
                session.record(events.PSBT_RECEIVED, events.psbt_received(
                    hashlib.sha256(raw).hexdigest(), "file" if scanned is None else "qr", len(raw)))
            default_wallet = gate.bundle.request.wallet if gate is not None else None
            registration = pick_wallet(settings, wallet or default_wallet, psbt, required=True)
            network = network_for(settings, registration)
            result = review(psbt, network, registration.descriptor, wallet_name=registration.name,
                            allow_high_fee=allow_high_fee)
            # NOTE: shown whether or not stdout carries --json (then on stderr): the log says it was.
            render_review(result, **({"console": rich_console(stderr=True)} if settings.json else {}))
            if session is not None:
                session.record(events.REVIEW_SHOWN, events.review_shown(review_digest(result)))
            if gate is not None:
                try:
                    gate.evaluate(psbt, registration, result)  # refusals recorded in the ledger, exit 4
                finally:
                    if session is not None and gate.decision is not None:
                        for event, payload in policy_payloads(gate.decision, gate.bundle, gate.in_force.policy,
                                                              gate.in_force.digest):
                            session.record(event, payload)
            refuse_if_needed(result)  # before the seed is even read
            seed = load_seed(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file)
            report = sign_psbt(psbt, result, registration.descriptor, seed)
            check_signatures(report, result)
            if session is not None:
                # NOTE: digests of the serialized (binary BIP-174) PSBTs, whatever encoding the files use:
                # the same digest the signing request and the ledger name. Built (and checked) before the
                # ledger claims the request, so a payload the log refuses cannot burn the request.
                produced = events.signatures_produced(
                    hashlib.sha256(psbt.serialize()).hexdigest(), hashlib.sha256(report.psbt.serialize()).hexdigest(),
                    report.signed, result.txid, produced_outputs(result, gate.labels(result) if gate else None))
                log_key = identity_key(seed, session.log)
            if gate is not None:
                # NOTE: recorded (nonce claimed, amount counted) BEFORE the signed PSBT exists on disk: a
                # crash in between loses a signature, never lets the same request be signed twice.
                gate.record_signed(psbt, registration, result)
            if session is not None:
                session.record(events.SIGNATURES_PRODUCED, produced)
                session.flush(log_key)                       # on disk before the signed PSBT is
            _data, sha = write_psbt(out, report.psbt, binary)
            if answer.wanted:
                sent = report.psbt if full_psbt else signatures_only(report.psbt, psbt)
                shown, frames = answer.deliver(sent.serialize())
                shown["content"] = "psbt" if full_psbt else "signatures"
                if session is not None:
                    session.record(events.EXPORTED, events.exported(qr_format.value, frames, shown["sha256"]))
                    session.flush(log_key)
        finally:
            if gate is not None:
                gate.close()
    except Refused as refused:
        if session is None or refused.code == "log-torn":
            raise
        # NOTE: a refusal is logged, signed: the seed is read here ONLY to derive the identity key
        # (SLIP-10 Ed25519); no Bitcoin key is derived and nothing is signed or written but the log.
        if seed is None:
            try:
                seed = load_seed(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file)
            except ColdsignError as err:
                err.hint = (f"the PSBT was refused ({refused.message}); logging the refusal needs the identity "
                            "key of the seed" + (f"; {err.hint}" if err.hint else ""))
                raise
        session.record_refusal(refused)
        try:
            log_key = identity_key(seed, session.log)
        except Refused as other:  # a seed that does not keep this log cannot log the refusal either
            other.hint = f"the PSBT was refused first ({refused.code}: {refused.message}); {other.hint}"
            raise
        session.flush(log_key)
        raise
    doc = {**report.to_json(), "out": str(out), "sha256": sha, "seed": seed.fingerprints()}
    if gate is not None:
        doc["policy"] = gate.summary()
    if scanned is not None:
        doc["received"] = scanned.to_json()
    if answer.wanted:
        doc["qr"] = shown
    def human() -> None:
        if gate is not None:                    # what the policy checked, then what was signed
            from coldsign.cli.policy_evaluate import decision_json, render_decision

            render_decision(decision_json(gate.decision, gate.in_force))
        render_sign_report(report, str(out), sha, doc["seed"])

    emit(settings, doc, human)


class _PolicyGate:
    """`psbt sign` under a policy: the bundle, the policy in force, the ledger, and the decision."""

    def __init__(self, bundle, in_force, ledger):
        self.bundle, self.in_force, self.ledger = bundle, in_force, ledger
        self.decision = None

    @classmethod
    def open(cls, settings, request_file: Path | None, policy_file: Path | None,
             scanned_bundle=None) -> "_PolicyGate | None":
        """None when no policy applies and no request is given (as --request FILE or scanned from QR);
        Refused `request-required` when a policy applies and no request is given. Under a policy,
        a missing or unreadable request is a refusal the ledger records too."""
        from datetime import datetime, timezone

        from coldsign.cli.policy_evaluate import no_policy, policy_in_force
        from coldsign.errors import BadInput, Refused
        from coldsign.policy.ledger import open_for_policy

        in_force = policy_in_force(settings, policy_file)
        if request_file is None and scanned_bundle is None and in_force is None:
            return None
        if in_force is None:
            raise no_policy(settings)
        ledger = open_for_policy(settings.home, in_force.record)
        try:
            if request_file is None and scanned_bundle is None:
                raise Refused(f'policy "{in_force.policy.name}" v{in_force.policy.version} is in force on this '
                              "signer: signing needs an approved request", code="request-required",
                              hint="pass --request BUNDLE (made with `coldsign request create` and approved with "
                                   "`coldsign request approve`)")
            from coldsign.cli.request import read_bundle
            from coldsign.policy.request import decode_bundle

            bundle = (decoded(scanned_bundle, decode_bundle) if scanned_bundle is not None
                      else read_bundle(request_file)[0])
        except (Refused, BadInput) as err:
            ledger.record_refusal(time=datetime.now(timezone.utc), nonce=None, rule=None,
                                  reason=f"{err.code}: {err.message}")
            ledger.close()
            raise
        return cls(bundle, in_force, ledger)

    def bundle_psbt(self):
        from coldsign.psbt.codec import Psbt

        return Psbt.parse(self.bundle.psbt)

    def evaluate(self, psbt, registration, result) -> None:
        from datetime import datetime, timezone

        from coldsign.cli.policy_evaluate import decide, failures_text, refusal

        now = datetime.now(timezone.utc)
        self.decision = decide(self.in_force, self.bundle, psbt, registration, result, self.ledger, now)
        if not self.decision.allowed:
            self.ledger.record_refusal(time=now, nonce=self.bundle.request.nonce, rule=self.decision.rule,
                                       reason=failures_text(self.decision))
            raise refusal(self.decision, self.in_force)

    def record_signed(self, psbt, registration, result) -> None:
        """Record the signing; first the same decision again, at the signing's own time and under the
        ledger's write lock (Refused when a signing recorded meanwhile by another process, e.g. while
        this one waited at the password prompt, now breaks a velocity limit, the nonce or the chain
        tip, or when the request expired during the wait)."""
        from datetime import datetime, timezone

        from coldsign.cli.policy_evaluate import decide, failures_text, refusal
        from coldsign.errors import Refused
        from coldsign.psbt.codec import psbt_sha256

        now = datetime.now(timezone.utc)

        def recheck(ledger) -> None:
            evaluated, decision = self.decision, decide(self.in_force, self.bundle, psbt, registration, result,
                                                        ledger, now)
            self.decision = decision
            if not decision.allowed:
                raise refusal(decision, self.in_force)
            if decision.rule != evaluated.rule:
                raise Refused(f"the deciding rule changed while signing (rule {evaluated.rule!r} when the request "
                              f"was evaluated, {decision.rule!r} now); nothing was written",
                              code="policy-decision-changed", hint="sign again: the request is evaluated afresh")

        request = self.bundle.request
        try:
            self.ledger.record_signed(nonce=request.nonce, psbt_sha256=psbt_sha256(psbt), wallet=registration.name,
                                      amount_sat=self.decision.amount_sat, signed_at=now,
                                      tip_height=request.tip_height, tip_hash=request.tip_hash,
                                      rule=self.decision.rule, recheck=recheck)
        except Refused as refused:
            self.ledger.record_refusal(time=now, nonce=request.nonce, rule=self.decision.rule,
                                       reason=refused.message if self.decision.allowed else failures_text(self.decision))
            raise

    def labels(self, review) -> dict[int, str]:
        """The policy's address-book name of each output that has one, by output index."""
        from coldsign.policy.evaluate import address_book_names

        return address_book_names(self.in_force.policy, review)

    def summary(self) -> dict:
        return {"name": self.in_force.policy.name, "version": self.in_force.policy.version,
                "digest": self.in_force.digest.hex(), "rule": self.decision.rule,
                "nonce": self.bundle.request.nonce, "amount_sat": self.decision.amount_sat,
                "checks": [c.to_json() for c in self.decision.checks]}

    def close(self) -> None:
        self.ledger.close()


@app.command()
def combine(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="PSBT files of the same transaction")],
    out: Annotated[Path, typer.Option("--out", help="where to write the combined PSBT")],
    json_flag: JsonFlag = False,
) -> None:
    """Merge the signatures of several PSBTs of the same unsigned transaction (BIP-174 combiner).

    Example: coldsign psbt combine signed-alice.psbt signed-bob.psbt --out combined.psbt
    """
    from coldsign.psbt.codec import combine as combine_psbts

    settings = settings_of(ctx, json_flag)
    loaded = [read_psbt(f) for f in files]
    merged = combine_psbts([p for p, _, _ in loaded])
    _data, sha = write_psbt(out, merged, loaded[0][2])
    emit(settings, {"out": str(out), "sha256": sha, "txid": merged.txid(), "combined": len(files)},
         lambda: typer.echo(f"Combined {len(files)} PSBT(s) of {merged.txid()} into {out} (sha256 {sha})"))


@app.command()
def finalize(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="signed PSBT files of the same transaction")],
    out: Annotated[Path, typer.Option("--out", help="where to write the final transaction (hex)")],
    json_flag: JsonFlag = False,
) -> None:
    """Combine, finalize, and run every input through libbitcoinkernel; write the network transaction.

    Example: coldsign psbt finalize signed-alice.psbt signed-bob.psbt --out withdrawal.tx --json
    """
    from coldsign.psbt.codec import combine as combine_psbts
    from coldsign.psbt.consensus import verify_inputs
    from coldsign.psbt.finalize import finalize as finalize_psbt

    settings = settings_of(ctx, json_flag)
    merged = combine_psbts([read_psbt(f)[0] for f in files])
    final = finalize_psbt(merged)
    failed = [v for v in verify_inputs(final.tx, final.spent, range(len(final.spent))) if not v.ok]
    if failed:
        raise VerificationFailed(f"libbitcoinkernel rejects {len(failed)} input(s); nothing was written",
                                 code="consensus", details=[{"index": v.index, "code": "consensus",
                                                             "message": v.message} for v in failed])
    atomic_write(out, final.tx.hex() + "\n")
    emit(settings, {"txid": final.txid, "hex": final.tx.hex(), "consensus_checked": True, "out": str(out)},
         lambda: typer.echo(f"Final transaction {final.txid}: every input accepted by libbitcoinkernel; "
                            f"wrote {out}"))


def read_transaction(path: Path) -> bytes:
    raw = read_limited(path, LIMITS.transaction_max_bytes * 2 + 2, what="transaction file")
    text = raw.strip()
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        if len(raw) > LIMITS.transaction_max_bytes:
            raise BadInput("transaction file is too large", where=str(path)) from None
        return raw


@app.command()
def broadcast(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="final transaction (hex or binary)")],
    regtest: Annotated[bool, typer.Option("--regtest", help="mine it on the embedded regtest chain")] = False,
    source_url: Annotated[Optional[str], typer.Option("--source", help="send it through this chain source: "
                          "bitcoind://HOST:PORT?cookie=PATH or esplora\\[s]://HOST\\[:PORT]\\[/PATH] (see `coldsign "
                          "watch sync --help`)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Send a final transaction. With --regtest: mine it into a block of the embedded chain and
    report the height, or why the block was refused. With --source: the node's mempool acceptance
    test first (refused: exit 4 with its reason), then the broadcast.

    Example: coldsign psbt broadcast withdrawal.tx --regtest --json

    Example: coldsign --network testnet psbt broadcast withdrawal.tx --source esploras://blockstream.info/testnet/api
    """
    from coldsign.cli.regtest import open_chain

    settings = settings_of(ctx, json_flag)
    if regtest == (source_url is not None):
        raise UsageProblem("say where the transaction goes: --regtest (the embedded chain) or --source URL",
                           hint="e.g. --source bitcoind://127.0.0.1:8332?cookie=/var/lib/bitcoind/.cookie")
    tx = read_transaction(file)
    if source_url is not None:
        from coldsign.chain import sources
        from coldsign.chain.source import send_accepted

        source = sources.open_source(source_url, settings.require_network(), settings.home)
        try:
            txid, described = send_accepted(source, tx), source.description
        finally:
            source.close()
        emit(settings, {"txid": txid, "accepted": True, "source": described},
             lambda: typer.echo(f"Broadcast {txid} through {described}"))
        return
    with open_chain(settings) as chain:
        result = chain.broadcast(tx)
    if not result.accepted:
        raise VerificationFailed(f"the block holding the transaction was refused: {result.reason}",
                                 where=str(file), code="block-refused", hint="the chain tip did not move")
    txid = result.txids[-1] if result.txids else None
    emit(settings, {"txid": txid, "accepted": True, "height": result.height, "block_hash": result.block_hash},
         lambda: typer.echo(f"Mined {txid} in block {result.height} ({result.block_hash})"))
