"""`coldsign policy init | show | approve-doc | install | verify`: the signed policy document.

Thin: the document and its digest live in `coldsign.policy.document`, the admins' signatures and
the quorum in `coldsign.policy.signatures`, the install in `coldsign.policy.installed`.
`policy evaluate` is registered on this app by `coldsign.cli.policy_evaluate` (imported at the end).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, Settings, emit, rich_console, settings_of
from coldsign.cli.secrets import (IdentityIndexOpt, KeystoreOpt, MnemonicFileOpt, PassphraseFileOpt,
                                 PasswordFileOpt, load_identity)
from coldsign.errors import BadInput, ExitStatus, Refused

app = typer.Typer(no_args_is_help=True, help="The signed policy: what this signer may sign and who must "
                  "approve it.\n\nExample: coldsign policy show")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def read_policy_file(file: Path):
    """(bytes, Policy) of a policy file, read once and bounded; BadInput names the file."""
    from coldsign.limits import LIMITS
    from coldsign.policy.document import parse_policy
    from coldsign.store import read_limited

    data = read_limited(file, LIMITS.policy_file_max_bytes, what="policy file")
    return data, parse_policy(data, where=str(file))


def _read_signatures(files: list[Path]):
    from coldsign.policy.signatures import SIGNATURE_MAX_BYTES, PolicySignature
    from coldsign.store import read_limited

    return [(str(f), PolicySignature.parse(read_limited(f, SIGNATURE_MAX_BYTES, what="policy signature file"),
                                           where=str(f)))
            for f in files]


def _check_network(settings: Settings, policy) -> None:
    if settings.network is not None and settings.network.value != policy.network:
        raise BadInput(f"the policy is for {policy.network}, not {settings.network.value}", code="policy-network",
                       hint="check that this is the right policy file, or the --network option")


# ------------------------------------------------------------------ init

@app.command()
def init(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="where to write the example")] = Path("policy.toml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Write a commented example policy to edit.

    The example: treasury up to 5 BTC a day to the exchange with 2 of 3 treasurers; anything else
    3 of 4 approvers including the CFO; admins 2 of 3.

    Replace every <...> placeholder (identity keys, the exchange address); until then the file is
    refused (exit 3) naming the placeholder.

    Example: coldsign --network main policy init treasury-policy.toml
    """
    from coldsign.policy.document import default_expiry
    from coldsign.policy.examples import init_example
    from coldsign.store import atomic_write

    settings = settings_of(ctx, json_flag)
    network = settings.require_network()
    if out.exists() and not force:
        raise Refused(f"{out} already exists", code="exists", hint="choose another file or pass --force")
    atomic_write(out, init_example(network.value, default_expiry(_now())))
    doc = {"out": str(out), "network": network.value}
    emit(settings, doc, lambda: rich_console().print(f"Wrote an example policy to {out}: replace every <...>, "
                                                 "then have the admins sign it (coldsign policy approve-doc)."))


# ------------------------------------------------------------------ show

def render_policy(doc: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    console = rich_console()
    console.print(Text.assemble(("Policy ", "bold"), f'"{doc["name"]}" version {doc["version"]}  '
                                f'network {doc["network"]}  expires {doc["expires"] or "never"}'))
    console.print(Text.assemble("digest: ", (doc["digest_groups"], "bold")), soft_wrap=True)
    console.print(f'admins: {doc["admins"]["threshold"]} of the approvers holding "{doc["admins"]["role"]}"'
                  f'   clock skew allowed: {doc["clock_skew"]}')
    table = Table(title="Rules (first match decides; anything else is refused)", title_justify="left")
    for col in ("#", "rule", "wallets", "destinations", "per-tx max", "velocity", "fees", "approvals", "hours"):
        table.add_column(col, overflow="fold")
    for i, r in enumerate(doc["rules_view"], 1):
        table.add_row(str(i), r["rule"], r["wallets"], r["destinations"], r["per_tx"], r["velocity"], r["fees"],
                      Text(r["approvals"], style="bold red") if r["action"] == "deny" else r["approvals"], r["hours"])
    console.print(table)
    people = Table(title="Approvers", title_justify="left")
    for col in ("name", "roles", "fingerprint"):
        people.add_column(col, overflow="fold")
    for a in doc["approvers_view"]:
        people.add_row(a["name"], ", ".join(a["roles"]), a["fingerprint"])
    console.print(people)
    for entry in doc["address_book"]:
        console.print(Text(f'{entry["name"]}: ' + ", ".join(entry["addresses"] + entry["descriptors"])),
                      soft_wrap=True)


def _rule_view(rule) -> dict:
    from coldsign.policy.document import format_amount, format_duration, format_hours
    from coldsign.policy.model import ANY

    fees = []
    if rule.fee.max_sat is not None:
        fees.append(f"≤ {format_amount(rule.fee.max_sat)}")
    if rule.fee.max_rate_sat_vb is not None:
        fees.append(f"≤ {rule.fee.max_rate_sat_vb:g} sat/vB")
    if rule.fee.max_percent is not None:
        fees.append(f"≤ {rule.fee.max_percent:g}%")
    if rule.approvals is None:
        approvals = "DENY"
    else:
        a = rule.approvals
        approvals = f'{a.threshold} of "{a.group}"'
        if a.require_roles:
            approvals += " incl. " + ", ".join(f'"{r}"' for r in a.require_roles)
        approvals += "" if a.initiator_may_approve else "; not the initiator"
    return {"rule": rule.name, "action": rule.action, "wallets": ", ".join(rule.wallets),
            "destinations": "any" if rule.destinations == ANY else ", ".join(rule.destinations),
            "per_tx": format_amount(rule.max_per_tx_sat) if rule.max_per_tx_sat is not None else "-",
            "velocity": "; ".join(f"{format_amount(v.max_sat)} / {format_duration(v.window_seconds)}"
                                  for v in rule.velocity) or "-",
            "fees": ", ".join(fees) or "-", "approvals": approvals, "hours": format_hours(rule.hours)}


def policy_view(policy, digest: bytes) -> dict:
    """The policy's canonical content plus digest and display strings (the --json of `policy show`)."""
    from coldsign.keys.identity import fingerprint_of
    from coldsign.policy.document import format_digest, format_duration, policy_to_json

    doc = {"digest": digest.hex(), "digest_groups": format_digest(digest), **policy_to_json(policy),
           "clock_skew": format_duration(policy.clock_skew_seconds) if policy.clock_skew_seconds else "0s"}
    doc["approvers_view"] = [{"name": a.name, "roles": list(a.roles), "fingerprint": fingerprint_of(a.public_key)}
                             for a in policy.approvers]
    doc["rules_view"] = [_rule_view(r) for r in policy.rules]
    return doc


@app.command()
def show(
    ctx: typer.Context,
    file: Annotated[Optional[Path], typer.Argument(help="a policy file (default: the installed policy)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Show a policy's rules as a table, with its digest, version and expiry.

    Columns: rule, wallets, destinations, per-tx max, velocity, fees, approvals, hours; then the
    approvers (roles, identity fingerprints) and the address book.

    Example: coldsign policy show treasury-policy.toml
    """
    from coldsign.errors import NotFound
    from coldsign.policy.document import policy_digest
    from coldsign.policy.installed import load_installed

    settings = settings_of(ctx, json_flag)
    if file is None:
        found = load_installed(settings.home)
        if found is None:
            raise NotFound("no policy is installed on this signer", where=str(settings.home),
                           hint="give a policy file, or install one (coldsign policy install)")
        policy, source = found.policy, "installed"
    else:
        _, policy = read_policy_file(file)
        source = str(file)
    doc = {"source": source, **policy_view(policy, policy_digest(policy))}
    emit(settings, doc, lambda: render_policy(doc))


# ------------------------------------------------------------------ approve-doc

@app.command("approve-doc")
def approve_doc(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the policy file to sign")],
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    index: IdentityIndexOpt = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="signature file (default: next to FILE, "
                   "named after the version and your identity fingerprint)")] = None,
    json_flag: JsonFlag = False,
) -> None:
    """Sign a policy as an admin: your identity key signs its digest (domain policy/v1).

    Read the rules first (coldsign policy show FILE): you vouch for exactly this digest. The policy
    is checked before the seed is read, so a broken file costs no password prompt.

    Example: coldsign policy approve-doc treasury-policy.toml --keystore ana --out ana.sig.json
    """
    from coldsign.cli.secrets import check_seed_options
    from coldsign.policy.document import format_digest
    from coldsign.policy.signatures import sign_policy
    from coldsign.store import atomic_write

    settings = settings_of(ctx, json_flag)
    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    _, policy = read_policy_file(file)
    key = load_identity(settings.home, keystore_name, mnemonic_file, passphrase_file, password_file, index)
    signature = sign_policy(policy, key)
    target = out or file.with_name(f"{file.stem}.v{policy.version}.{key.fingerprint}.sig.json")
    atomic_write(target, signature.serialize())
    approver = policy.approver_by_key(key.public_key)
    doc = {"out": str(target), "policy_digest": signature.policy_digest.hex(), "policy_version": policy.version,
           "signer": key.public_hex, "fingerprint": key.fingerprint,
           "named_in_policy": approver.name if approver else None}

    def render() -> None:
        console = rich_console()
        digest = format_digest(signature.policy_digest)
        console.print(f'Signed policy "{policy.name}" v{policy.version}, digest {digest}')
        console.print(f"as {key.fingerprint}" + (f" ({approver.name})" if approver else
                                                  " (a key this policy does not name)"))
        console.print(f"Signature: {target}", soft_wrap=True)
    emit(settings, doc, render)


# ------------------------------------------------------------------ install and verify

def render_quorum(report_doc: dict, console) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Signatures", title_justify="left")
    for col in ("file", "signer", "roles", "fingerprint", "counts", "why not"):
        table.add_column(col, overflow="fold")
    for s in report_doc["signatures"]:
        table.add_row(s["file"], s["name"] or "unknown key", ", ".join(s["roles"]), s["fingerprint"],
                      Text("yes", style="green") if s["counts"] else Text("no", style="bold red"), s["reason"])
    console.print(table)
    console.print(Text(report_doc["summary"], style="green" if report_doc["met"] else "bold red"), soft_wrap=True)


def _ceremony_key(settings: Settings, keystore_name, mnemonic_file, passphrase_file, password_file):
    """(session, identity key) when the ceremony log is active, else (None, None) without reading a seed."""
    from coldsign.ceremony.session import CeremonySession, identity_key
    from coldsign.cli.secrets import check_seed_options, load_seed
    from coldsign.errors import UsageProblem

    check_seed_options(keystore_name, mnemonic_file, passphrase_file, password_file)
    session = CeremonySession.active_in(settings.home)
    if session is None:
        return None, None
    if keystore_name is None and mnemonic_file is None:
        raise UsageProblem(f"this home has a ceremony log ({settings.home}/ceremony): installing a policy is logged, "
                           "signed by the custodian's identity key, so the log needs the custodian's key",
                           hint="pass --keystore NAME or --mnemonic-file FILE (the seed is read only to derive "
                                "the identity key)")
    session.log.check_not_torn()
    return session, identity_key(load_seed(settings.home, keystore_name, mnemonic_file, passphrase_file,
                                           password_file), session.log)


@app.command()
def install(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the policy file")],
    signatures: Annotated[list[Path], typer.Argument(help="admin signature files (policy approve-doc)")],
    first: Annotated[bool, typer.Option("--first", help="the first install, in the key ceremony: the quorum "
                                        "is the policy's own admins; the witnesses check the digest")] = False,
    keystore_name: KeystoreOpt = None,
    mnemonic_file: MnemonicFileOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    password_file: PasswordFileOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Install a policy on this signer, signed by the installed policy's admin quorum.

    It needs the admin quorum named in the CURRENTLY installed policy and a higher version (an
    equal or lower one is refused as a rollback, exit 4). Keys rotate this way: the new version
    names the new keys and the current admins sign it.

    The first policy is installed with --first, signed by a quorum it names itself; its digest is
    shown for the witnesses to compare. Nothing is written unless every check passes.

    The install binds the policy to this signer's ledger (<home>/ledger.sqlite, created when
    missing; its id is in the JSON as ledger_id). If that ledger is lost or replaced, signing is
    refused (ledger-missing / ledger-mismatch, exit 4) until the admins install a new version.

    Once this home has a ceremony log (`coldsign log open`, even after `log close`) the install is logged (policy-installed),
    signed by the custodian's identity key: pass --keystore or --mnemonic-file (read only then).

    Example: coldsign policy install treasury-policy.toml ana.sig.json ben.sig.json --keystore treasury-1
    """
    from coldsign.policy.document import format_digest
    from coldsign.policy.installed import install as install_policy

    settings = settings_of(ctx, json_flag)
    data, policy = read_policy_file(file)
    _check_network(settings, policy)
    signed = _read_signatures(signatures)
    session, key = _ceremony_key(settings, keystore_name, mnemonic_file, passphrase_file, password_file)
    result = install_policy(settings.home, data, signed, first=first, now=_now(), where=str(file))
    if session is not None:
        from coldsign.ceremony import events

        session.record(events.POLICY_INSTALLED, events.policy_installed(result.digest.hex(), policy.version,
                                                                         policy.name))
        session.flush(key)
    doc = result.to_json()

    def render() -> None:
        from rich.panel import Panel
        from rich.text import Text

        console = rich_console()
        render_quorum(doc["quorum"], console)
        what = "First policy" if result.previous is None else \
            f"Policy (replacing v{result.previous.policy.version})"
        console.print(Panel(Text.assemble((f'{what} "{result.policy.name}" v{result.policy.version} installed\n',
                                            "bold green"), "digest:\n",
                                           (format_digest(result.digest), "bold")),
                            title="witnesses: compare this digest", expand=False))
    emit(settings, doc, render)


@app.command()
def verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the policy file")],
    signatures: Annotated[list[Path], typer.Argument(help="admin signature files (policy approve-doc)")],
    json_flag: JsonFlag = False,
) -> None:
    """Explain who signed a policy and whether the admin quorum is met (exit 5 when not).

    Lists each signature's signer (name, roles, fingerprint), which do not count and why, and
    checks the installed policy's quorum, or the file's own when nothing is installed.

    Example: coldsign policy verify treasury-policy.toml *.sig.json --json
    """
    from coldsign.policy.document import format_digest
    from coldsign.policy.installed import load_installed
    from coldsign.policy.signatures import check_quorum

    settings = settings_of(ctx, json_flag)
    _, policy = read_policy_file(file)
    signed = _read_signatures(signatures)
    current = load_installed(settings.home)
    report = check_quorum(policy, signed, current.policy if current else None)
    rollback = current is not None and policy.version <= current.policy.version
    doc = {"name": policy.name, "version": policy.version, "digest": report.digest.hex(),
           "ok": report.met, "rollback": rollback, **report.to_json()}

    def render() -> None:
        console = rich_console()
        console.print(f'Policy "{policy.name}" v{policy.version}, digest {format_digest(report.digest)}')
        render_quorum(doc, console)
        if rollback:
            console.print(f"note: version {policy.version} is not above the installed v{current.policy.version}: "
                          "install would refuse it as a rollback")
    emit(settings, doc, render)
    if not report.met:
        if not settings.json:
            typer.echo(f"error: {report.summary()}", err=True)
        raise typer.Exit(int(ExitStatus.VERIFICATION_FAILED))


# `policy evaluate` lives in its own module and registers itself on `app`.
import coldsign.cli.policy_evaluate  # noqa: E402,F401
