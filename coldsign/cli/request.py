"""`coldsign request create | approve | verify`: a PSBT wrapped in a signed request, and its approvals.

The coordinator creates the bundle (coldsign.policy.request), approvers review the PSBT and add
their Ed25519 approvals, anyone verifies. The bundle travels as a file or as animated QR (BBQr
file type J, or UR `bytes`); `coldsign qr decode` gives back the same bundle bytes.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, Settings, emit, rich_console, settings_of
from coldsign.cli.secrets import (IdentityIndexOpt, KeystoreOpt, MnemonicFileOpt, PassphraseFileOpt,
                                 PasswordFileOpt, load_identity)
from coldsign.errors import BadInput, Refused, UsageProblem, VerificationFailed
from coldsign.policy.request import MAX_TIP_HEIGHT

app = typer.Typer(no_args_is_help=True, help="Signing requests: wrap a PSBT in a signed request, approve it, "
                  "verify its signatures.")


class QRFormat(str, Enum):
    bbqr = "bbqr"
    ur = "ur"


BundleArg = Annotated[Path, typer.Argument(help="the request bundle file (JSON)")]


def read_bundle(path: Path):
    """(Bundle, bytes) of a bundle file, read once and bounded; BadInput names the file."""
    from coldsign.policy.request import BUNDLE_MAX_BYTES, decode_bundle
    from coldsign.store import read_limited

    raw = read_limited(path, BUNDLE_MAX_BYTES, what="request bundle")
    try:
        return decode_bundle(raw), raw
    except BadInput as err:
        err.where = err.where or str(path)
        raise


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- the chain tip the coordinator saw ---------------------------------------------------------------

def chain_tip(settings: Settings, wallet: str, tip_height: int | None, tip_hash: str | None,
              source_url: str | None) -> tuple[int, str, str]:
    """(height, hash, where from): --tip-height/--tip-hash, else asked of the chain source (--source,
    $COLDSIGN_SOURCE, or the embedded chain on regtest) on the watch wallet's network."""
    if (tip_height is None) != (tip_hash is None):
        raise UsageProblem("give --tip-height and --tip-hash together (or neither, to ask the chain source)")
    if tip_height is not None:
        if source_url is not None:
            raise UsageProblem("give --tip-height/--tip-hash or --source, not both")
        text = tip_hash.strip().lower()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise BadInput(f"--tip-hash {tip_hash[:80]!r} is not a block hash (64 hex digits)", code="bad-tip")
        return tip_height, text, "given"
    from coldsign.cli.watch import open_source

    source = open_source(settings, _network_of(settings, wallet), source_url)
    try:
        tip = source.tip()
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return tip.height, tip.block_hash, source.description


def _network_of(settings: Settings, wallet: str):
    """The watch wallet's network when the home folder watches `wallet`, else the registration's, else --network."""
    from coldsign.errors import NotFound
    from coldsign.watch.db import DB_FILE

    if (settings.home / DB_FILE).is_file():
        from coldsign.cli.watch import open_db

        with open_db(settings) as db:
            try:
                return settings.require_network(db.wallet(wallet).network)
            except NotFound:
                pass
    from coldsign.wallet import registry

    if registry.wallet_path(settings.home, wallet).is_file():
        return settings.require_network(registry.load(settings.home, wallet).network)
    return settings.require_network()


# --- coldsign request create ---------------------------------------------------------------------------

@app.command("create")
def create(
    ctx: typer.Context,
    psbt_file: Annotated[Path, typer.Argument(metavar="PSBT", help="the unsigned PSBT: binary, base64 or hex")],
    wallet: Annotated[str, typer.Option("--wallet", help="the wallet the PSBT spends from (its registered "
                                        "name on the signers)")],
    keystore_name: Annotated[Optional[str], typer.Option("--requester", "--keystore", help="the requester's "
                             "keystore: its identity key signs the request (prompts for the password)")] = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: IdentityIndexOpt = 0,
    expires: Annotated[str, typer.Option("--expires", help="how long the request stays valid: 30m, 2h, "
                                         "7d (at most 90d)")] = "24h",
    memo: Annotated[str, typer.Option("--memo", help="a note for the approvers (at most 500 characters)")] = "",
    tip_height: Annotated[Optional[int], typer.Option("--tip-height", min=0, max=MAX_TIP_HEIGHT, help="the chain tip's height "
                          "(with --tip-hash; else the chain source is asked)")] = None,
    tip_hash: Annotated[Optional[str], typer.Option("--tip-hash", help="the chain tip's block hash")] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="chain source to ask for the tip: "
                      "bitcoind://…, esplora\\[s]://… (default: $COLDSIGN_SOURCE, or the embedded chain on "
                      "regtest)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="the bundle file to write (default: "
                   "PSBT's name + .request.json)")] = None,
    qr: Annotated[bool, typer.Option("--qr", help="also show the bundle as animated QR in the terminal")] = False,
    frames_dir: Annotated[Optional[Path], typer.Option("--frames-dir", help="also write the bundle's QR frames "
                          "(frame-0001.png … and frames.txt) to this folder")] = None,
    qr_format: Annotated[QRFormat, typer.Option("--qr-format", help="bbqr (file type J, Coldcard Q) or ur "
                         "(type bytes)")] = QRFormat.bbqr,
    cycles: Annotated[Optional[int], typer.Option("--cycles", min=1, help="with --qr: stop after this many "
                      "cycles of the frames (default: until q)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace frames already in --frames-dir")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Wrap a PSBT in a signing request signed by the requester's identity key (the coordinator's step).

    The request names the PSBT's SHA-256, the wallet, a fresh 128-bit nonce, when it was created
    and expires, and the chain tip seen now; the bundle file carries it, its approvals and the PSBT.

    Example: coldsign --network regtest request create withdrawal.psbt --wallet vault --requester ops --expires 2h --out withdrawal.request.json

    Example: coldsign request create w.psbt --wallet vault --mnemonic-file ops.txt --tip-height 840000 --tip-hash 0000…a5 --frames-dir qr/ --json
    """
    from coldsign.cli.psbt import read_psbt
    from coldsign.cli.qr_send import TerminalQR, json_kind, transmission_of, write_transmission_frames
    from coldsign.cli.secrets import check_seed_options
    from coldsign.policy import request as R
    from coldsign.store import atomic_write
    from coldsign.wallet.registry import check_name

    settings = settings_of(ctx, json_flag)
    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    check_name(wallet)
    lifetime = R.parse_duration(expires)
    if len(memo) > R.MEMO_MAX_CHARS or any(not ch.isprintable() for ch in memo):
        raise BadInput(f"--memo must be at most {R.MEMO_MAX_CHARS} printable characters", code="bad-memo")
    if cycles is not None and not qr:
        raise UsageProblem("--cycles goes with --qr")
    out = out or psbt_file.with_name(psbt_file.name + ".request.json")
    if frames_dir is not None:
        from coldsign.qr.media import stale_frames

        stale_frames(frames_dir, overwrite)   # refuse early, before any secret is read
    psbt, _raw, _binary = read_psbt(psbt_file)
    psbt_bytes = psbt.serialize()
    height, block_hash, tip_from = chain_tip(settings, wallet, tip_height, tip_hash, source)
    key = load_identity(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file, index)
    request = R.new_request(psbt_bytes, wallet=wallet, requester=key.public_key, now=_now(),
                            lifetime_seconds=lifetime, tip_height=height, tip_hash=block_hash, memo=memo)
    bundle = R.bundle_of(request, key, psbt_bytes)
    data = R.encode_bundle(bundle)
    terminal_qr = TerminalQR(data, qr_format, json_kind(qr_format), label="request bundle",
                             stderr=settings.json) if qr else None   # a terminal too small: exit 7 here
    atomic_write(out, data)
    doc = {"out": str(out), "sha256": hashlib.sha256(data).hexdigest(),
           "request_digest": R.request_digest(request).hex(), **R.request_to_json(request),
           "requester_fingerprint": key.fingerprint, "tip_from": tip_from}
    if frames_dir is not None:
        doc["qr"] = write_transmission_frames(transmission_of(data, qr_format, json_kind(qr_format)), frames_dir,
                                              overwrite)

    def render() -> None:
        console = rich_console(soft_wrap=True)
        console.print(f"Request {doc['request_digest']} for wallet {wallet}, PSBT sha256 {request.psbt_sha256}")
        console.print(f"  nonce {request.nonce}, created {request.created}, expires {request.expires}")
        console.print(f"  chain tip {height} {block_hash} ({tip_from})")
        console.print(f"  signed by requester {key.fingerprint}; wrote {out}")
        if "qr" in doc:
            console.print(f"  {doc['qr']['frames']} QR frame(s) ({qr_format.value}) in {frames_dir}/")

    if terminal_qr is not None:
        if not settings.json:
            render()
        doc["qr_shown"] = terminal_qr.show(cycles=cycles)
        if not settings.json:
            return
    emit(settings, doc, render)


# --- coldsign request approve --------------------------------------------------------------------------

@app.command("approve")
def approve(
    ctx: typer.Context,
    bundle_file: BundleArg,
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: IdentityIndexOpt = 0,
    wallet: Annotated[Optional[str], typer.Option("--wallet", help="review against this registered wallet "
                      "(default: the one the request names, when registered here)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="where to write the approved bundle "
                   "(default: replace BUNDLE)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="approve without asking (needed off a terminal)")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Review the request's PSBT, check the requester's signature and the PSBT hash, and add your approval.

    Shows the same review as `psbt inspect` (against the wallet's registration when this home
    folder has it). A tampered bundle exits 5; an expired request exits 4; nothing is written then.
    Approving twice with the same key adds nothing.

    Example: coldsign request approve withdrawal.request.json --keystore treasurer-2

    Example: coldsign request approve w.request.json --mnemonic-file bob.txt --yes --out w.approved.json --json
    """
    from coldsign.cli.psbt import network_for
    from coldsign.cli.secrets import check_seed_options
    from coldsign.console import render_review
    from coldsign.keys.identity import fingerprint_of
    from coldsign.policy import request as R
    from coldsign.psbt.codec import Psbt
    from coldsign.psbt.review import review
    from coldsign.store import atomic_write
    from coldsign.wallet import registry

    settings = settings_of(ctx, json_flag)
    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    bundle, _raw = read_bundle(bundle_file)
    R.require_authentic(bundle)
    if R.is_expired(bundle.request, _now()):
        raise Refused(f"the request expired at {bundle.request.expires}; nothing was approved",
                      code="request-expired", where=str(bundle_file), hint="ask the coordinator for a new request")
    name = wallet or bundle.request.wallet
    registration = None
    if wallet is not None or registry.wallet_path(settings.home, name).is_file():
        registration = registry.load(settings.home, name)
    network = network_for(settings, registration)
    result = review(Psbt.parse(bundle.psbt), network, registration.descriptor if registration else None,
                    wallet_name=registration.name if registration else None)
    console = rich_console(stderr=settings.json, soft_wrap=True)   # with --json the review goes to stderr
    render_review(result, console)
    if registration is None:
        console.print(f"Wallet {name} is not registered here: reviewed without it (change is not recognised).")
    _render_request(console, bundle)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageProblem("approving needs confirmation and there is no terminal",
                               hint="run it in a terminal, or pass --yes after reviewing with `psbt inspect`")
        if not typer.confirm("Approve this request?", default=False, err=True):
            raise Refused("the request was not approved (declined at the prompt); nothing was written",
                          code="not-confirmed", where=str(bundle_file))
    key = load_identity(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file, index)
    updated, added = R.approve(bundle, key, _now())
    target = out or bundle_file
    data = R.encode_bundle(updated)
    if added or target != bundle_file:
        atomic_write(target, data)
    doc = {"out": str(target), "added": added, "approver": key.public_hex, "approver_fingerprint": key.fingerprint,
           "approvals": [fingerprint_of(a.approver) for a in updated.approvals],
           "request_digest": R.request_digest(updated.request).hex(), "sha256": hashlib.sha256(data).hexdigest(),
           "wallet_registered": registration is not None, "review": result.to_json()}
    verb = "Approved" if added else "Already approved by"
    emit(settings, doc, lambda: rich_console(soft_wrap=True).print(
        f"{verb} {key.fingerprint}: {len(updated.approvals)} approval(s); wrote {target}"))


def _render_request(console, bundle) -> None:
    from coldsign.keys.identity import fingerprint_of

    r = bundle.request
    console.print(f"Request for wallet {r.wallet}: PSBT sha256 {r.psbt_sha256}")
    console.print(f"  from {fingerprint_of(r.requester)}, created {r.created}, expires {r.expires}, "
                  f"chain tip {r.tip_height}")
    if r.memo:
        console.print(f"  memo: {r.memo}")
    console.print(f"  {len(bundle.approvals)} approval(s) so far")


# --- coldsign request verify ---------------------------------------------------------------------------

@app.command("verify")
def verify(
    ctx: typer.Context,
    bundle_file: BundleArg,
    policy_file: Annotated[Optional[Path], typer.Option("--policy", help="name the signers from this policy "
                           "file (default: the installed policy, if any)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Check a bundle: the requester's signature, the PSBT hash, every approval; name each signer.

    Signers are named from the policy (--policy FILE, else the installed one) when it lists their
    keys, else shown by fingerprint. Any bad signature or a changed PSBT exits 5.

    Example: coldsign request verify withdrawal.request.json --policy treasury.toml --json
    """
    from coldsign.keys.identity import fingerprint_of
    from coldsign.policy import request as R

    settings = settings_of(ctx, json_flag)
    bundle, raw = read_bundle(bundle_file)
    policy, policy_from = _policy_for_names(settings, policy_file)
    checked = R.verify_bundle(bundle)

    def who(public_key: bytes) -> dict:
        person = policy.approver_by_key(public_key) if policy is not None else None
        return {"public_key": public_key.hex(), "fingerprint": fingerprint_of(public_key),
                "name": person.name if person else None, "roles": list(person.roles) if person else []}

    r = bundle.request
    doc = {"ok": checked.ok, "bundle": str(bundle_file), "sha256": hashlib.sha256(raw).hexdigest(),
           "request_digest": R.request_digest(r).hex(), "request": R.request_to_json(r),
           "expired": R.is_expired(r, _now()), "policy": policy_from,
           "requester": {**who(r.requester), "valid": checked.requester_ok},
           "psbt_matches": checked.psbt_ok,
           "approvals": [{**who(a.approver), "valid": valid} for a, valid in checked.approvals],
           "problems": checked.problems()}
    emit(settings, doc, lambda: _render_verify(doc))
    if not checked.ok:
        # NOTE: the report above is the one JSON document; the error goes to stderr only.
        settings.json = False
        raise VerificationFailed("; ".join(doc["problems"]), where=str(bundle_file), code="bundle-not-authentic",
                                 hint="do not sign or approve it; ask the coordinator for the original bundle")


def _policy_for_names(settings: Settings, policy_file: Path | None):
    """(Policy or None, where it came from) — only to put names on keys; verification never needs it."""
    if policy_file is not None:
        from coldsign.cli.policy import read_policy_file

        return read_policy_file(policy_file)[1], str(policy_file)
    from coldsign.policy.installed import installed_policy

    policy = installed_policy(settings.home)
    return (policy, "installed") if policy is not None else (None, None)


def _render_verify(doc: dict) -> None:
    from rich.text import Text

    console = rich_console(soft_wrap=True)

    def name(p: dict) -> str:
        return f"{p['name']} ({', '.join(p['roles'])})" if p["name"] else "not in the policy"

    mark = {True: Text("valid", style="green"), False: Text("INVALID", style="bold red")}
    r = doc["request"]
    console.print(Text.assemble(("Request ", "bold"), doc["request_digest"]))
    console.print(f"  wallet {r['wallet']}, created {r['created']}, expires {r['expires']}"
                  + (" (EXPIRED)" if doc["expired"] else "") + f", chain tip {r['tip_height']}")
    if r["memo"]:
        console.print(f"  memo: {r['memo']}")
    console.print(Text("Signatures:", style="bold"))
    for label, p in [("requester", doc["requester"]), *(("approval", a) for a in doc["approvals"])]:
        console.print(Text.assemble(f"  {label:<9}  {p['fingerprint']}  ", mark[p["valid"]], f"  {name(p)}"))
    console.print(Text.assemble("PSBT sha256 matches the request: ",
                                mark[True] if doc["psbt_matches"] else Text("NO", style="bold red")))
    if doc["ok"]:
        console.print(Text("Every signature verifies.", style="green"))
