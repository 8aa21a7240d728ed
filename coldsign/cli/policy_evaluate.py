"""`coldsign policy evaluate BUNDLE`: the signer's policy decision on a request, as a dry run.

Registered on `coldsign.cli.policy.app`. `psbt sign --request` makes the same decision through
`decide()` here, then records it; the dry run records nothing (and creates no ledger).

Which policy decides: the one installed in the home folder. `--policy FILE` names the policy the
operator expects: with a policy installed it must be that very policy (same digest), else the
request is refused (`policy-not-installed`); on a signer with no installed policy it is used as
given: an unsigned file can only add restrictions to a signer that has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, Settings, emit, rich_console, settings_of
from coldsign.cli.policy import app
from coldsign.errors import Refused, UsageProblem

PolicyFileOpt = Annotated[Optional[Path], typer.Option("--policy", help="the policy file expected to decide "
                          "(must be the installed one when a policy is installed)")]


@dataclass
class PolicyInForce:
    policy: object              # coldsign.policy.model.Policy
    digest: bytes
    record: dict | None         # installed.json, None for an uninstalled --policy file


def policy_in_force(settings: Settings, policy_file: Path | None) -> PolicyInForce | None:
    """The installed policy (checked against `policy_file` when given), else `policy_file`, else None."""
    from coldsign.cli.policy import read_policy_file
    from coldsign.policy.document import policy_digest
    from coldsign.policy.installed import load_installed

    installed = load_installed(settings.home)
    given = read_policy_file(policy_file)[1] if policy_file is not None else None
    if installed is None:
        return None if given is None else PolicyInForce(given, policy_digest(given), None)
    if given is not None and policy_digest(given) != installed.digest:
        raise Refused(f'{policy_file} is not the installed policy ("{installed.policy.name}" '
                      f"v{installed.policy.version}, digest {installed.digest.hex()[:16]}…)",
                      code="policy-not-installed",
                      hint="install it first with the admins' signatures (`coldsign policy install`)")
    return PolicyInForce(installed.policy, installed.digest, installed.record)


def no_policy(settings: Settings) -> UsageProblem:
    """The error for a request to evaluate on a signer with no policy installed and no --policy."""
    return UsageProblem(f"no policy is installed in {settings.home} to evaluate the request against",
                        hint="install one (`coldsign policy install`) or pass --policy FILE")


def decide(in_force: PolicyInForce, bundle, psbt, registration, result, ledger, now: datetime):
    """The decision on `bundle` for `psbt` (reviewed as `result`) from `registration`."""
    from coldsign.policy.evaluate import evaluate
    from coldsign.psbt.codec import psbt_sha256

    return evaluate(in_force.policy, bundle, result, ledger, now, wallet_name=registration.name,
                    psbt_sha256=psbt_sha256(psbt))


def failures_text(decision) -> str:
    """Every failed check of `decision`, "name: detail; ...", then why the rules before the deciding
    one did not match: the reason the ledger records."""
    return "; ".join([f"{c.name}: {c.detail}" for c in decision.failures]
                     + [f"passed over rule {c.rule!r}: {c.name}: {c.detail}" for c in decision.passed_over])


def refusal(decision, in_force: PolicyInForce) -> Refused:
    """The Refused error for a decision that does not allow: names the rule and every failed check."""
    failures = decision.failures
    where = f"rule {decision.rule!r}" if decision.rule else "no rule allows it"
    first = failures[0] if failures else None
    text = f"{first.name}: {first.detail}" if first else "denied"
    details = [{"code": c.name.replace(" ", "-"), "message": (f"rule {c.rule}: " if c.rule else "")
                + f"{c.name}: {c.detail}", "check": c.name, "rule": c.rule, "detail": c.detail} for c in failures]
    # NOTE: the rules passed over on the way to the deciding one say why a stricter rule decided
    # (e.g. "velocity 24h: 3 BTC signed + 2.5 BTC requested > 5 BTC"): listed after, marked.
    details += [{"code": "passed-over", "message": f"rule {c.rule} did not match: {c.name}: {c.detail}",
                 "check": c.name, "rule": c.rule, "detail": c.detail, "passed_over": True}
                for c in decision.passed_over]
    passed = sorted({c.rule for c in decision.passed_over}, key=[c.rule for c in decision.checks].index)
    return Refused(f'policy "{in_force.policy.name}" v{in_force.policy.version} refuses this request ({where}): '
                   f"{text}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
                   + (f"; passed over {', '.join(repr(r) for r in passed)}: see below" if passed else ""),
                   code="policy-refused", details=details,
                   hint="nothing was signed; see every failed check below")


def decision_json(decision, in_force: PolicyInForce) -> dict:
    return {"name": in_force.policy.name, "version": in_force.policy.version, "digest": in_force.digest.hex(),
            **decision.to_json()}


def render_decision(doc: dict) -> None:
    from rich.table import Table

    console = rich_console()
    table = Table(title=f'policy "{doc["name"]}" v{doc["version"]}: '
                        f'{"ALLOWED" if doc["allowed"] else "REFUSED"} (rule {doc["rule"] or "none"})')
    for column in ("rule", "check", "", "detail"):
        table.add_column(column)
    for c in doc["checks"]:
        table.add_row(c["rule"] or "-", c["name"], "ok" if c["passed"] else "FAIL", c["detail"])
    console.print(table)


@app.command()
def evaluate(
    ctx: typer.Context,
    bundle_file: Annotated[Path, typer.Argument(metavar="BUNDLE", help="the request bundle (request, "
                           "approvals and PSBT)")],
    wallet: Annotated[Optional[str], typer.Option("--wallet", help="registered wallet (default: the one the "
                      "request names)")] = None,
    policy_file: PolicyFileOpt = None,
    json_flag: JsonFlag = False,
) -> None:
    """Dry run of the signer's decision on a request: every check and rule, pass or fail, with the
    numbers behind it. Records nothing. Exit 4 (with the failed checks) when the policy refuses.

    Example: coldsign --network regtest policy evaluate withdrawal.bundle --json
    """
    from coldsign.cli.psbt import network_for, pick_wallet
    from coldsign.cli.request import read_bundle
    from coldsign.policy.ledger import ledger_path, open_for_policy
    from coldsign.psbt.codec import Psbt
    from coldsign.psbt.review import review

    settings = settings_of(ctx, json_flag)
    bundle, _raw = read_bundle(bundle_file)
    in_force = policy_in_force(settings, policy_file)
    if in_force is None:
        raise no_policy(settings)
    psbt = Psbt.parse(bundle.psbt)
    registration = pick_wallet(settings, wallet or bundle.request.wallet, psbt, required=True)
    network = network_for(settings, registration)
    result = review(psbt, network, registration.descriptor, wallet_name=registration.name)
    now = datetime.now(timezone.utc)
    bound = in_force.record is not None and in_force.record.get("ledger_id") is not None
    if bound or ledger_path(settings.home).exists():   # a bound but missing ledger is refused there
        with open_for_policy(settings.home, in_force.record) as ledger:
            decision = decide(in_force, bundle, psbt, registration, result, ledger, now)
    else:
        decision = decide(in_force, bundle, psbt, registration, result, _EmptyLedger(), now)
    doc = decision_json(decision, in_force)
    if not decision.allowed:
        if not settings.json:
            render_decision(doc)
        raise refusal(decision, in_force)
    emit(settings, doc, lambda: render_decision(doc))


class _EmptyLedger:
    """A signer that never signed: what the dry run sees before the first ledger exists."""

    def signed_since(self, wallet: str, since: datetime) -> int:
        return 0

    def nonce_seen(self, nonce: str) -> bool:
        return False

    def newest_tip(self) -> int | None:
        return None
