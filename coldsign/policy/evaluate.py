"""Evaluating a signing request on the signer, before any key is derived (issue 6 §4).

`evaluate(policy, bundle, review, ledger, now, wallet_name=..., psbt_sha256=...)` returns a
`model.Decision`: every check made, pass or fail, with the numbers behind it. In order:

1. the request itself (rule None): the requester's signature verifies and the requester is an
   approver of the policy; the PSBT to be signed, the bundle's PSBT and the request's digest are
   one and the same; the review found nothing to refuse; each approval's signature verifies (an
   approval that does not verify refuses the bundle: it was made over another request or PSBT, or
   tampered with), while a valid approval by a key the policy does not name is shown and not
   counted; the request is not expired and not created in the future (both with the policy's clock
   skew allowance); the policy is not expired; the request's chain tip is not older than the newest
   tip this signer recorded; its nonce was never signed; its wallet is the registration used; the
   policy is for the review's network.
2. the rules, in order: the first rule whose conditions all hold (wallet, destinations, max per
   transaction, each velocity window, fee caps, time window) decides. An "allow" rule's
   destinations hold when every payment goes to them; a "deny" rule's when any payment does (one
   more output elsewhere must not take a payment to a denied address past it). A "deny" rule refuses. An
   "allow" rule's approval requirement must be met: `threshold` distinct approvers holding the
   rule's group role, the initiator (requester) not among them unless the rule allows it, and among
   them a holder of each required role. When no rule's conditions hold, deny by default; each
   rule's checks say why it did not match.

The amount is what leaves the wallet: the review's non-change outputs. Velocity asks the ledger
what this wallet signed in the window ending now (see coldsign.policy.ledger for entries dated
after now). A percent fee cap cannot hold when nothing leaves the wallet unless the fee is zero.
A time window whose start is after its end wraps past midnight (22:00-06:00). Outputs without an
address (OP_RETURN) pass only a rule whose destinations are "any".

Pure: no I/O, no clock (`now` is passed), signatures verified by coldsign.keys.identity.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

from coldsign.amounts import format_btc as btc  # exact, 8 decimals: "1.20000000 BTC"
from coldsign.errors import ColdsignError
from coldsign.policy.document import format_duration as window_text  # "24h", "7d", "30m", "90s"
from coldsign.policy.model import (ANY, Approver, Bundle, Check, Decision, FeeCaps, Policy, Rule,
                                   TimeWindow)
from coldsign.policy.request import approval_valid, format_time

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_BECH32_PREFIXES = ("bc1", "tb1", "bcrt1")


def evaluate(policy: Policy, bundle: Bundle, review, ledger, now: datetime, *, wallet_name: str,
             psbt_sha256: str) -> Decision:
    """The decision on `bundle` for signing the PSBT whose SHA-256 is `psbt_sha256` (reviewed as
    `review`, a coldsign.psbt.review.Review) from registered wallet `wallet_name`, under `policy`,
    at `now` (timezone-aware), with `ledger` a coldsign.policy.ledger.LedgerView."""
    if now.tzinfo is None:
        raise ValueError("evaluate() needs a timezone-aware `now`")
    valid = {a.approver for a in bundle.approvals if approval_valid(bundle.request, a)}
    checks = _request_checks(policy, bundle, review, ledger, now, wallet_name, psbt_sha256, valid)
    amount = review.sent_sat
    deciding: Rule | None = None
    for rule in policy.rules:
        conditions = _conditions(rule, policy, review, ledger, now, wallet_name, amount)
        checks += conditions
        if all(c.passed for c in conditions):
            deciding = rule
            checks += _decide(rule, policy, bundle, valid)
            break
    if deciding is None:
        names = ", ".join(r.name for r in policy.rules) or "none"
        checks.append(Check("rules", False, f"no rule's conditions hold (rules tried: {names}): denied by default"))
    decision = Decision(allowed=False, rule=deciding.name if deciding else None, checks=tuple(checks),
                        amount_sat=amount)
    if deciding is not None and not decision.failures:
        decision = Decision(allowed=True, rule=deciding.name, checks=tuple(checks), amount_sat=amount)
    return decision


# --- the request ---------------------------------------------------------------------------------


def _request_checks(policy, bundle, review, ledger, now, wallet_name, psbt_sha256, valid) -> list[Check]:
    from coldsign.policy.request import parse_time, psbt_digest, requester_signature_valid

    request = bundle.request
    skew = timedelta(seconds=policy.clock_skew_seconds)
    checks = []
    signed = requester_signature_valid(bundle)
    checks.append(Check("requester signature", signed, f"the requester's signature ({_who(policy, request.requester)}) "
                        + ("verifies over this request" if signed else "does not verify over this request")))
    requester = policy.approver_by_key(request.requester)
    checks.append(Check("requester", requester is not None,
                        f"{_who(policy, request.requester)} is an approver of policy {policy.name!r}" if requester
                        else f"key {_fingerprint(request.requester)} is not an approver of policy {policy.name!r}"))
    carried = psbt_digest(bundle.psbt)
    same = request.psbt_sha256 == carried == psbt_sha256
    checks.append(Check("psbt digest", same, f"request names {request.psbt_sha256}, bundle carries {carried}, "
                        f"signing {psbt_sha256}" + ("" if same else ": not the same PSBT")))
    refusals = review.refusals
    checks.append(Check("psbt review", not refusals, "the review found nothing to refuse" if not refusals else
                        "the review refuses: " + "; ".join(f"[{f.code}] {f.message}" for f in refusals)))
    for approval in bundle.approvals:
        checks.append(_approval_check(policy, approval, approval.approver in valid))
    created = parse_time(request.created, field="request.created")
    expires = parse_time(request.expires, field="request.expires")
    at = format_time(now)
    skew_text = f"clock skew allowance {policy.clock_skew_seconds} s"
    checks.append(Check("request created", created <= now + skew,
                        f"created {request.created}, signer's clock {at}, {skew_text}"
                        + ("" if created <= now + skew else ": created in the future")))
    # NOTE: `now - skew`, not `expires + skew`: a request may expire at 9999-12-31T23:59:59Z, and
    # adding the allowance to it would overflow datetime (a crash instead of a decision).
    live = now - skew <= expires
    checks.append(Check("request expiry", live, f"expires {request.expires}, signer's clock {at}, {skew_text}"
                        + ("" if live else ": expired")))
    checks.append(_policy_expiry(policy, now))
    newest = ledger.newest_tip()
    fresh = newest is None or request.tip_height >= newest
    checks.append(Check("chain tip", fresh, f"request built on tip {request.tip_height}, newest tip this signer "
                        f"recorded {'none' if newest is None else newest}" + ("" if fresh else ": stale request")))
    seen = ledger.nonce_seen(request.nonce)
    checks.append(Check("nonce", not seen, f"nonce {request.nonce} " + ("was already signed: a replay" if seen
                                                                        else "never signed before")))
    checks.append(Check("wallet", request.wallet == wallet_name,
                        f"request is for wallet {request.wallet!r}, signing with registration {wallet_name!r}"))
    network = review.network.value
    checks.append(Check("network", policy.network == network,
                        f"policy is for {policy.network}, the PSBT is reviewed on {network}"))
    return checks


def _approval_check(policy: Policy, approval, valid: bool) -> Check:
    name = f"approval {_fingerprint(approval.approver)}"
    if not valid:
        return Check(name, False, f"{_who(policy, approval.approver)}: the approval signature does not verify "
                     "over this request (made for another request or PSBT, or altered)")
    approver = policy.approver_by_key(approval.approver)
    if approver is None:
        return Check(name, True, f"key {_fingerprint(approval.approver)} is not an approver of policy "
                     f"{policy.name!r}: its approval does not count")
    return Check(name, True, f"{_who(policy, approval.approver)}: valid approval")


def _policy_expiry(policy: Policy, now: datetime) -> Check:
    if policy.expires is None:
        return Check("policy expiry", True, f"policy {policy.name!r} v{policy.version} does not expire")
    try:
        expires = datetime.fromisoformat(policy.expires)
    except ValueError:
        return Check("policy expiry", False, f"policy expiry {policy.expires!r} is not an ISO 8601 time")
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    ok = now < expires
    return Check("policy expiry", ok, f"policy {policy.name!r} v{policy.version} expires {policy.expires}, "
                 f"signer's clock {format_time(now)}" + ("" if ok else ": expired"))


# --- a rule's conditions ---------------------------------------------------------------------------


def _conditions(rule: Rule, policy, review, ledger, now, wallet_name, amount) -> list[Check]:
    checks = []
    wallet_ok = ANY in rule.wallets or wallet_name in rule.wallets
    checks.append(Check("wallet", wallet_ok, f"wallet {wallet_name!r} is {'' if wallet_ok else 'not '}one of: "
                        + ", ".join(rule.wallets), rule.name))
    checks.append(_destinations(rule, policy, review))
    if rule.max_per_tx_sat is not None:
        ok = amount <= rule.max_per_tx_sat
        checks.append(Check("max per tx", ok, f"{btc(amount)} leaving the wallet {'<=' if ok else '>'} "
                            f"{btc(rule.max_per_tx_sat)} limit", rule.name))
    for velocity in rule.velocity:
        signed = ledger.signed_since(wallet_name, now - timedelta(seconds=velocity.window_seconds))
        ok = signed + amount <= velocity.max_sat
        checks.append(Check(f"velocity {window_text(velocity.window_seconds)}", ok,
                            f"{btc(signed)} signed + {btc(amount)} requested {'<=' if ok else '>'} "
                            f"{btc(velocity.max_sat)} limit", rule.name))
    checks += _fee_checks(rule.name, rule.fee, review, amount)
    if rule.hours is not None:
        checks.append(_hours(rule.name, rule.hours, now))
    return checks


def _destinations(rule: Rule, policy: Policy, review) -> Check:
    payments = [o for o in review.outputs if not o.change]
    if rule.destinations == ANY:
        return Check("destinations", True, f"any destination ({len(payments)} payment(s))", rule.name)
    book = {e.name: e for e in policy.address_book}
    missing = [n for n in rule.destinations if n not in book]
    if missing:
        return Check("destinations", False, f"the address book has no entry {missing[0]!r}", rule.name)
    entries = [book[n] for n in rule.destinations]
    listed = {_normal(a) for e in entries for a in e.addresses}
    inside, outside = [], []
    for out in payments:
        where = f"output {out.index} ({out.address or 'no address'})"
        if out.address is not None and (_normal(out.address) in listed
                                        or _in_descriptors(entries, out.script_pubkey, review.network)):
            inside.append(where)
        else:
            outside.append(where)
    names = ", ".join(rule.destinations)
    if rule.action == "deny":
        # NOTE: a deny rule's destinations match when ANY payment goes there: "every payment" would
        # let one extra output to anywhere else slip a payment to a denied address past the rule.
        if inside:
            return Check("destinations", True, f"{', '.join(inside)} in the address book entries {names}",
                         rule.name)
        return Check("destinations", False, f"no payment ({len(payments)}) goes to {names}", rule.name)
    if outside:
        return Check("destinations", False, f"{', '.join(outside)} not in the address book entries {names}",
                     rule.name)
    return Check("destinations", True, f"every payment ({len(payments)}) goes to {names}", rule.name)


def address_book_names(policy: Policy, review) -> dict[int, str]:
    """The name of the first address-book entry holding each output (by address or descriptor), by
    output index: what the ceremony log and the auditor's report call a destination."""
    names = {}
    for out in review.outputs:
        for entry in policy.address_book:
            if out.address is not None and (_normal(out.address) in {_normal(a) for a in entry.addresses}
                                            or _in_descriptors([entry], out.script_pubkey, review.network)):
                names[out.index] = entry.name
                break
    return names


def _normal(address: str) -> str:
    return address.lower() if address.lower().startswith(_BECH32_PREFIXES) else address


def _in_descriptors(entries, script: bytes, network) -> bool:
    for entry in entries:
        for text in entry.descriptors:
            scripts = _descriptor_scripts(text, network.value, entry.gap)
            if scripts is not None and script in scripts:
                return True
    return False


@lru_cache(maxsize=32)
def _descriptor_scripts(text: str, network_name: str, gap: int) -> frozenset[bytes] | None:
    """Receive and change scripts 0..gap-1 of one of our own wallets' descriptors (None: unusable)."""
    from coldsign.network import Network
    from coldsign.wallet.descriptor import WalletDescriptor

    try:
        wallet = WalletDescriptor.parse(text, Network(network_name))
    except ColdsignError:
        return None
    return frozenset(wallet.script_pubkey(change, i) for change in (0, 1) for i in range(gap))


def _fee_checks(rule_name: str, caps: FeeCaps, review, amount: int) -> list[Check]:
    limits = [caps.max_sat, caps.max_rate_sat_vb, caps.max_percent]
    if all(v is None for v in limits):
        return []
    fee = review.fee_sat
    if fee is None:
        return [Check("fee", False, "the fee is unknown (an input amount is missing): fee caps cannot hold", rule_name)]
    checks = []
    if caps.max_sat is not None:
        ok = fee <= caps.max_sat
        checks.append(Check("fee", ok, f"{fee} sat {'<=' if ok else '>'} {caps.max_sat} sat limit", rule_name))
    if caps.max_rate_sat_vb is not None:
        rate = fee / review.vsize
        ok = rate <= caps.max_rate_sat_vb
        checks.append(Check("fee rate", ok, f"{fee} sat / {review.vsize} vB = {rate:.2f} sat/vB "
                            f"{'<=' if ok else '>'} {caps.max_rate_sat_vb:g} sat/vB limit", rule_name))
    if caps.max_percent is not None:
        if amount == 0:
            ok = fee == 0
            checks.append(Check("fee percent", ok, f"{fee} sat fee with nothing leaving the wallet: a percentage "
                                f"cap of {caps.max_percent:g}% {'holds' if ok else 'cannot hold'}", rule_name))
        else:
            ok = fee * 100 <= caps.max_percent * amount
            checks.append(Check("fee percent", ok, f"{fee} sat is {fee * 100 / amount:.2f}% of {btc(amount)} "
                                f"{'<=' if ok else '>'} {caps.max_percent:g}% limit", rule_name))
    return checks


def _hours(rule_name: str, window: TimeWindow, now: datetime) -> Check:
    utc = now.astimezone(timezone.utc)
    minute = utc.hour * 60 + utc.minute
    start, end = window.start_minute, window.end_minute
    in_hours = start <= minute < end if start <= end else (minute >= start or minute < end)
    on_day = utc.weekday() in window.days
    ok = in_hours and on_day
    days = ",".join(DAY_NAMES[d] for d in sorted(window.days))
    return Check("time window", ok, f"{DAY_NAMES[utc.weekday()]} {utc:%H:%M} UTC is {'' if ok else 'not '}within "
                 f"{days} {_clock(start)}-{_clock(end)} UTC", rule_name)


# --- the deciding rule -------------------------------------------------------------------------------


def _decide(rule: Rule, policy: Policy, bundle: Bundle, valid: set[bytes]) -> list[Check]:
    if rule.action == "deny":
        return [Check("action", False, f"rule {rule.name!r} denies what it matches", rule.name)]
    if rule.action != "allow" or rule.approvals is None:
        return [Check("action", False, f"rule {rule.name!r} has action {rule.action!r} and no approval "
                      "requirement: nothing can be allowed by it", rule.name)]
    need = rule.approvals
    initiator = bundle.request.requester
    counted: list[Approver] = []
    not_counted: list[str] = []
    for key in dict.fromkeys(a.approver for a in bundle.approvals if a.approver in valid):
        approver = policy.approver_by_key(key)
        if approver is None:
            not_counted.append(f"{_fingerprint(key)} (unknown key)")
        elif need.group not in approver.roles:
            not_counted.append(f"{approver.name} (not a {need.group})")
        elif key == initiator and not need.initiator_may_approve:
            not_counted.append(f"{approver.name} (initiated the request; this rule bars the initiator)")
        else:
            counted.append(approver)
    ok = len(counted) >= max(need.threshold, 1)   # a threshold of 0 would allow anyone
    detail = (f"{len(counted)} of {need.threshold} required approvals from role {need.group!r}: "
              + (", ".join(a.name for a in counted) or "none"))
    if not_counted:
        detail += "; not counted: " + ", ".join(not_counted)
    checks = [Check("approvals", ok, detail, rule.name)]
    for role in need.require_roles:
        holders = [a.name for a in counted if role in a.roles]
        checks.append(Check(f"role {role}", bool(holders), f"approved by {', '.join(holders)} ({role})" if holders
                            else f"no counted approval by a holder of role {role!r}", rule.name))
    return checks


# --- text ------------------------------------------------------------------------------------------


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _fingerprint(key: bytes) -> str:
    from coldsign.keys.identity import fingerprint_of

    try:
        return fingerprint_of(key)
    except ColdsignError:
        return key.hex()[:16]


def _who(policy: Policy, key: bytes) -> str:
    approver = policy.approver_by_key(key)
    if approver is None:
        return f"unknown key {_fingerprint(key)}"
    return f"{approver.name} ({', '.join(approver.roles)}, {_fingerprint(key)})"
