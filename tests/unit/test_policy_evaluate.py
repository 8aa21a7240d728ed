"""Evaluation of signing requests (coldsign.policy.evaluate), table-driven, on real objects: real
Ed25519 identity signatures, a real PSBT reviewed against a registered-style wallet, and the real
SQLite ledger in a temporary folder.

The scenario every case starts from, in words:
  * wallet "vault": walletkit's single-key wpkh wallet (alice's seed, 84h/1h/0h, regtest); the PSBT
    spends receive 0/0 and 0/1 (100,000 sat each), pays 150,000 sat to EXTERNAL (a P2WPKH outside
    every test wallet) and the rest less a 2 sat/vB fee to change 1/0. Amount out: 150,000 sat.
  * policy "treasury" v3 on regtest, clock skew 300 s, expiring 2025-12-31; approvers alice, bob,
    carol (treasurer), dave (officer, cfo), erin (officer), frank (officer). Address book
    "exchange" = [EXTERNAL]. One rule "exchange": wallet vault, destinations exchange, 2 of
    treasurer (initiator may not approve), max 150,000 sat per tx, velocity 500,000 sat per 24h,
    fee <= the PSBT's fee, <= its rate, <= its percentage, Mon-Fri 09:00-17:00 UTC.
  * now: Tuesday 2025-03-04 14:05:00 UTC. The request (by alice) was created 10 minutes earlier,
    expires 2 hours after creation, built on chain tip 200, nonce 0x11 * 16. Approvals: bob, carol.
  * ledger: 350,000 sat signed for vault exactly 24 h ago (inside the window), newest tip 200.

Each case changes one thing (or two, at an edge) and states the decision, the rule that decided
and the failing checks with their text. A Hypothesis property then combines faults at random:
any fault at all never yields allowed=True.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import walletkit as W
from coldsign.keys.identity import IdentityKey, fingerprint_of
from coldsign.keys.secret import Secret
from coldsign.network import Network
from coldsign.policy.evaluate import btc, evaluate, window_text
from coldsign.policy.ledger import Ledger
from coldsign.policy.model import (ANY, AddressBookEntry, Admins, Approvals, Approver, FeeCaps, Policy, Rule,
                                   TimeWindow, Velocity)
from coldsign.policy.request import bundle_of, new_request, sign_approval
from coldsign.psbt.review import address_of, review

NOW = datetime(2025, 3, 4, 14, 5, 0, tzinfo=timezone.utc)   # a Tuesday
SKEW = 300
NONCE = "11" * 16
TIP_HASH = "ab" * 32
EXTERNAL = address_of(W.EXTERNAL_SCRIPT, Network.REGTEST)
FRESH_SCRIPT = bytes.fromhex("0014") + bytes(range(100, 120))     # an address nobody allowlisted


def identity(name: str) -> IdentityKey:
    return IdentityKey.from_private(Secret(hashlib.sha256(f"coldsign test identity {name}".encode()).digest()))


KEYS = {n: identity(n) for n in ("alice", "bob", "carol", "dave", "erin", "frank", "mallory")}
ROLES = {"alice": ("treasurer",), "bob": ("treasurer",), "carol": ("treasurer", "admin"),
         "dave": ("officer", "cfo", "admin"), "erin": ("officer",), "frank": ("officer",)}


def psbt_and_review(payments=None, fee_rate=2):
    wallet, psbt = W.honest("wpkh", payments=payments or [(W.EXTERNAL_SCRIPT, 150_000)], fee_rate=fee_rate)
    return psbt, review(psbt, Network.REGTEST, wallet, wallet_name="vault")


BASE_PSBT, BASE_REVIEW = psbt_and_review()
FEE = BASE_REVIEW.fee_sat
VSIZE = BASE_REVIEW.vsize
RATE = FEE / VSIZE
PERCENT = FEE * 100 / 150_000


@dataclass
class Scenario:
    """Everything one evaluation depends on; each field a knob of the table."""

    now: datetime = NOW
    # policy
    expires: str | None = "2025-12-31T23:59:59Z"
    network: str = "regtest"
    book: tuple[AddressBookEntry, ...] = (AddressBookEntry("exchange", addresses=(EXTERNAL,)),)
    rule: Rule = field(default_factory=lambda: Rule(
        name="exchange", wallets=("vault",), destinations=("exchange",),
        approvals=Approvals(threshold=2, group="treasurer"), max_per_tx_sat=150_000,
        velocity=(Velocity(86_400, 500_000),), fee=FeeCaps(max_sat=FEE, max_rate_sat_vb=RATE, max_percent=PERCENT),
        hours=TimeWindow(days=(0, 1, 2, 3, 4), start_minute=9 * 60, end_minute=17 * 60)))
    more_rules: tuple[Rule, ...] = ()
    # request
    payments: list | None = None
    fee_rate: float = 2
    created: datetime = NOW - timedelta(minutes=10)
    lifetime: int = 7_200
    tip_height: int = 200
    request_wallet: str = "vault"
    requester: str = "alice"
    requester_signs_as: str | None = None      # another key signs the request (a forgery)
    approvers: tuple[str, ...] = ("bob", "carol")
    approval_over_other_psbt: str | None = None  # this approver signed a request for another PSBT
    carried_psbt_other: bool = False            # the bundle carries another PSBT than the request names
    # signer
    wallet_name: str = "vault"
    ledger_signed: tuple[tuple[int, datetime], ...] = ((350_000, NOW - timedelta(hours=24)),)
    ledger_tip: int = 200
    ledger_nonces: tuple[str, ...] = ()

    def policy(self) -> Policy:
        return Policy(name="treasury", version=3, expires=self.expires, clock_skew_seconds=SKEW,
                      admins=Admins(threshold=2),
                      approvers=tuple(Approver(n, KEYS[n].public_key, r) for n, r in ROLES.items()),
                      address_book=self.book, rules=(self.rule, *self.more_rules), network=self.network)

    def run(self, folder: Path):
        if self.payments is None and self.fee_rate == 2:
            psbt, reviewed = BASE_PSBT, BASE_REVIEW
        else:
            psbt, reviewed = psbt_and_review(self.payments, self.fee_rate)
        raw = psbt.serialize()
        request = new_request(raw, wallet=self.request_wallet, requester=KEYS[self.requester].public_key,
                              now=self.created, lifetime_seconds=self.lifetime, tip_height=self.tip_height,
                              tip_hash=TIP_HASH, nonce=NONCE)
        bundle = bundle_of(request, KEYS[self.requester], raw)
        if self.requester_signs_as:
            forged = KEYS[self.requester_signs_as].sign("request/v1", _digest(request))
            bundle = replace(bundle, requester_signature=forged)
        approvals = []
        for name in self.approvers:
            if name == self.approval_over_other_psbt:
                other = replace(request, psbt_sha256="00" * 32)
                approvals.append(replace(sign_approval(other, KEYS[name])))
            else:
                approvals.append(sign_approval(request, KEYS[name]))
        bundle = replace(bundle, approvals=tuple(approvals))
        if self.carried_psbt_other:
            other_psbt, _ = psbt_and_review([(W.EXTERNAL_SCRIPT, 140_000)])
            bundle = replace(bundle, psbt=other_psbt.serialize())
        with Ledger.open(folder) as ledger:
            for i, (amount, at) in enumerate(self.ledger_signed):
                ledger.record_signed(nonce=f"{i:032x}", psbt_sha256="22" * 32, wallet="vault", amount_sat=amount,
                                     signed_at=at, tip_height=self.ledger_tip, tip_hash=TIP_HASH, rule="exchange")
            for j, nonce in enumerate(self.ledger_nonces):
                ledger.record_signed(nonce=nonce, psbt_sha256="33" * 32, wallet="other", amount_sat=0,
                                     signed_at=NOW - timedelta(days=30), tip_height=self.ledger_tip,
                                     tip_hash=TIP_HASH, rule="exchange")
            return evaluate(self.policy(), bundle, reviewed, ledger, self.now, wallet_name=self.wallet_name,
                            psbt_sha256=hashlib.sha256(raw).hexdigest())


def _digest(request):
    from coldsign.policy.request import request_digest

    return request_digest(request)


def with_rule(**changes) -> Callable[[Scenario], None]:
    def apply(s: Scenario) -> None:
        s.rule = replace(s.rule, **changes)
    return apply


def with_approvals(**changes) -> Callable[[Scenario], None]:
    def apply(s: Scenario) -> None:
        if s.rule.approvals is not None:
            s.rule = replace(s.rule, approvals=replace(s.rule.approvals, **changes))
    return apply


def setting(**changes) -> Callable[[Scenario], None]:
    def apply(s: Scenario) -> None:
        for key, value in changes.items():
            setattr(s, key, value)
    return apply


def both(*steps) -> Callable[[Scenario], None]:
    def apply(s: Scenario) -> None:
        for step in steps:
            step(s)
    return apply


FP = {n: fingerprint_of(k.public_key) for n, k in KEYS.items()}
EXPIRES = NOW - timedelta(minutes=10) + timedelta(seconds=7_200)          # 15:55 UTC
LARGE = Rule(name="large", wallets=(ANY,), destinations=ANY,
             approvals=Approvals(threshold=3, group="officer", require_roles=("cfo",)))
DENY_FRESH = Rule(name="no-fresh", wallets=(ANY,), destinations=ANY, approvals=None, action="deny")
OWN_COLD = W.wallet("sh-wpkh")                                            # "our own other wallet"

# (id, change, allowed, deciding rule, {failing check name: text it contains})
CASES = [
    ("honest", setting(), True, "exchange", {}),
    # approvals: M-1 vs M, initiator, unknown key, roles, a signature over another PSBT
    ("one approval of two", setting(approvers=("bob",)), False, "exchange",
     {"approvals": "1 of 2 required approvals from role 'treasurer': bob"}),
    ("three approvals", setting(approvers=("bob", "carol", "alice")), True, "exchange", {}),
    ("initiator approving own request", setting(approvers=("alice", "bob")), False, "exchange",
     {"approvals": "1 of 2 required approvals from role 'treasurer': bob; not counted: alice (initiated the "
                   "request; this rule bars the initiator)"}),
    ("initiator allowed to approve", both(setting(approvers=("alice", "bob")),
                                          with_approvals(initiator_may_approve=True)), True, "exchange", {}),
    ("unknown approver key", setting(approvers=("bob", "mallory")), False, "exchange",
     {"approvals": f"1 of 2 required approvals from role 'treasurer': bob; not counted: {FP['mallory']} "
                   "(unknown key)"}),
    ("approver outside the group", setting(approvers=("bob", "erin")), False, "exchange",
     {"approvals": "not counted: erin (not a treasurer)"}),
    ("approval over another PSBT", setting(approval_over_other_psbt="carol"), False, "exchange",
     {f"approval {FP['carol']}": "the approval signature does not verify over this request",
      "approvals": "1 of 2 required approvals from role 'treasurer': bob"}),
    ("required role present", both(with_approvals(group="officer", threshold=2, require_roles=("cfo",)),
                                   setting(approvers=("dave", "erin"))), True, "exchange", {}),
    ("required role missing", both(with_approvals(group="officer", threshold=2, require_roles=("cfo",)),
                                   setting(approvers=("erin", "frank"))), False, "exchange",
     {"role cfo": "no counted approval by a holder of role 'cfo'"}),
    # the requester and the PSBT
    ("requester signature by another key", setting(requester_signs_as="bob"), False, "exchange",
     {"requester signature": "does not verify over this request"}),
    ("requester not an approver", setting(requester="mallory"), False, "exchange",
     {"requester": f"key {FP['mallory']} is not an approver of policy 'treasury'"}),
    ("bundle carries another PSBT", setting(carried_psbt_other=True), False, "exchange",
     {"psbt digest": "not the same PSBT"}),
    ("review refuses (fee over 10%)", both(setting(fee_rate=200), with_rule(fee=FeeCaps())), False, "exchange",
     {"psbt review": "[high-fee]"}),
    # time: request expiry and creation, with the skew allowance; the policy's own expiry
    ("expired, within the skew", setting(now=EXPIRES + timedelta(seconds=SKEW)), True, "exchange", {}),
    ("expired", setting(now=EXPIRES + timedelta(seconds=SKEW + 1)), False, "exchange",
     {"request expiry": "expires 2025-03-04T15:55:00Z, signer's clock 2025-03-04T16:00:01Z, clock skew "
                        "allowance 300 s: expired"}),
    ("created in the future within the skew", setting(created=NOW + timedelta(seconds=SKEW)), True, "exchange", {}),
    ("created in the future", setting(created=NOW + timedelta(seconds=SKEW + 1)), False, "exchange",
     {"request created": "created 2025-03-04T14:10:01Z, signer's clock 2025-03-04T14:05:00Z, clock skew "
                         "allowance 300 s: created in the future"}),
    ("policy expired", setting(expires="2025-03-04T14:05:00Z"), False, "exchange",
     {"policy expiry": "policy 'treasury' v3 expires 2025-03-04T14:05:00Z, signer's clock "
                       "2025-03-04T14:05:00Z: expired"}),
    ("policy expires a second later", setting(expires="2025-03-04T14:05:01Z"), True, "exchange", {}),
    # the ledger: stale tip, replayed nonce
    ("same tip as the newest seen", setting(tip_height=200), True, "exchange", {}),
    ("stale chain tip", setting(tip_height=199), False, "exchange",
     {"chain tip": "request built on tip 199, newest tip this signer recorded 200: stale request"}),
    ("replayed nonce", setting(ledger_nonces=(NONCE,)), False, "exchange",
     {"nonce": f"nonce {NONCE} was already signed: a replay"}),
    # wallet and network
    ("request for another wallet", setting(request_wallet="hot"), False, "exchange",
     {"wallet": "request is for wallet 'hot', signing with registration 'vault'"}),
    ("policy for another network", setting(network="test"), False, "exchange",
     {"network": "policy is for test, the PSBT is reviewed on regtest"}),
    # rule conditions: each fails the only rule, so nothing matches (deny by default)
    ("rule for another wallet", with_rule(wallets=("hot",)), False, None,
     {"wallet": "wallet 'vault' is not one of: hot"}),
    ("fresh address", setting(payments=[(FRESH_SCRIPT, 150_000)]), False, None,
     {"destinations": f"output 0 ({address_of(FRESH_SCRIPT, Network.REGTEST)}) not in the address book "
                      "entries exchange"}),
    ("any destination", both(setting(payments=[(FRESH_SCRIPT, 150_000)]), with_rule(destinations=ANY)),
     True, "exchange", {}),
    ("own wallet by descriptor, last index of the gap", both(
        setting(payments=[(OWN_COLD.script_pubkey(0, 9), 150_000)],
                book=(AddressBookEntry("exchange", descriptors=(OWN_COLD.canonical(),), gap=10),)),
        with_rule(fee=FeeCaps())),
     True, "exchange", {}),
    ("own wallet by descriptor, change branch", both(
        setting(payments=[(OWN_COLD.script_pubkey(1, 3), 150_000)],
                book=(AddressBookEntry("exchange", descriptors=(OWN_COLD.canonical(),), gap=10),)),
        with_rule(fee=FeeCaps())),
     True, "exchange", {}),
    ("own wallet by descriptor, beyond the gap", both(
        setting(payments=[(OWN_COLD.script_pubkey(0, 10), 150_000)],
                book=(AddressBookEntry("exchange", descriptors=(OWN_COLD.canonical(),), gap=10),)),
        with_rule(fee=FeeCaps())),
     False, None, {"destinations": "output 0 ("}),
    ("max per tx, exactly", setting(), True, "exchange", {}),
    ("max per tx, one sat over", with_rule(max_per_tx_sat=149_999), False, None,
     {"max per tx": "0.00150000 BTC leaving the wallet > 0.00149999 BTC limit"}),
    ("velocity exactly at the limit", setting(), True, "exchange", {}),
    ("velocity one sat over", setting(ledger_signed=((350_001, NOW - timedelta(hours=24)),)), False, None,
     {"velocity 24h": "0.00350001 BTC signed + 0.00150000 BTC requested > 0.00500000 BTC limit"}),
    ("velocity: a second before the window does not count",
     setting(ledger_signed=((350_001, NOW - timedelta(hours=24, seconds=1)),)), True, "exchange", {}),
    ("velocity over two windows, the 7d one over", both(
        with_rule(velocity=(Velocity(86_400, 500_000), Velocity(7 * 86_400, 600_000))),
        setting(ledger_signed=((350_000, NOW - timedelta(hours=24)), (100_001, NOW - timedelta(days=6))))),
     False, None, {"velocity 7d": "0.00450001 BTC signed + 0.00150000 BTC requested > 0.00600000 BTC limit"}),
    ("velocity counts only this wallet", setting(ledger_nonces=("ff" * 16,)), True, "exchange", {}),
    ("fee at the cap", setting(), True, "exchange", {}),
    ("fee one sat over", with_rule(fee=FeeCaps(max_sat=FEE - 1)), False, None,
     {"fee": f"{FEE} sat > {FEE - 1} sat limit"}),
    ("fee rate over", with_rule(fee=FeeCaps(max_rate_sat_vb=1.5)), False, None,
     {"fee rate": f"{FEE} sat / {VSIZE} vB = {RATE:.2f} sat/vB > 1.5 sat/vB limit"}),
    ("fee percent over", with_rule(fee=FeeCaps(max_percent=0.2)), False, None,
     {"fee percent": f"{FEE} sat is {PERCENT:.2f}% of 0.00150000 BTC > 0.2% limit"}),
    ("time window start", setting(now=NOW.replace(hour=9, minute=0), created=NOW.replace(hour=8, minute=55)),
     True, "exchange", {}),
    ("time window a minute before", setting(now=NOW.replace(hour=8, minute=59), created=NOW.replace(hour=8,
                                                                                                     minute=55)),
     False, None, {"time window": "Tue 08:59 UTC is not within Mon,Tue,Wed,Thu,Fri 09:00-17:00 UTC"}),
    ("time window last minute", setting(now=NOW.replace(hour=16, minute=59), created=NOW.replace(hour=16,
                                                                                                  minute=0)),
     True, "exchange", {}),
    ("time window end is excluded", setting(now=NOW.replace(hour=17, minute=0), created=NOW.replace(hour=16,
                                                                                                     minute=0)),
     False, None, {"time window": "Tue 17:00 UTC is not within"}),
    ("saturday", setting(now=NOW + timedelta(days=4), created=NOW + timedelta(days=4, minutes=-10),
                         ledger_signed=()), False, None, {"time window": "Sat 14:05 UTC is not within"}),
    ("window across midnight", both(with_rule(hours=TimeWindow(start_minute=22 * 60, end_minute=6 * 60)),
                                    setting(now=NOW.replace(hour=23, minute=30), created=NOW.replace(hour=23),
                                            ledger_signed=())), True, "exchange", {}),
    ("window across midnight, midday", with_rule(hours=TimeWindow(start_minute=22 * 60, end_minute=6 * 60)),
     False, None, {"time window": "Tue 14:05 UTC is not within Mon,Tue,Wed,Thu,Fri,Sat,Sun 22:00-06:00 UTC"}),
    # rule order: first matching rule decides; deny rules; fall-through to a stricter rule
    ("over the limit falls to the large rule, approved", both(
        with_rule(max_per_tx_sat=100_000), setting(more_rules=(LARGE,), approvers=("dave", "erin", "frank"))),
     True, "large", {}),
    ("over the limit falls to the large rule, treasurers only", both(
        with_rule(max_per_tx_sat=100_000), setting(more_rules=(LARGE,))), False, "large",
     {"approvals": "0 of 3 required approvals from role 'officer': none; not counted: bob (not a officer), "
                   "carol (not a officer)", "role cfo": "no counted approval"}),
    ("a deny rule that matches refuses", both(
        setting(payments=[(FRESH_SCRIPT, 150_000)], more_rules=(DENY_FRESH, LARGE))), False, "no-fresh",
     {"action": "rule 'no-fresh' denies what it matches"}),
    ("the first rule wins over a later deny", setting(more_rules=(DENY_FRESH,)), True, "exchange", {}),
]


@pytest.mark.parametrize("case_id, change, allowed, rule, failing", CASES, ids=[c[0] for c in CASES])
def test_decision(case_id, change, allowed, rule, failing, tmp_path):
    scenario = Scenario()
    change(scenario)
    decision = scenario.run(tmp_path)
    failures = {c.name: c.detail for c in decision.failures}
    if rule is None:    # nothing matched: deny by default, said once more at the end
        failing = {**failing, "rules": "denied by default"}
    assert decision.allowed is allowed, failures
    assert decision.rule == rule
    assert set(failures) == set(failing), failures
    for name, text in failing.items():
        assert text in failures[name], (name, failures[name])
    assert decision.amount_sat == sum(o.amount_sat for o in scenario_review(scenario).outputs if not o.change)


def scenario_review(scenario: Scenario):
    return BASE_REVIEW if scenario.payments is None and scenario.fee_rate == 2 else \
        psbt_and_review(scenario.payments, scenario.fee_rate)[1]


def test_every_check_is_reported_with_its_numbers(tmp_path):
    decision = Scenario().run(tmp_path)
    lines = [(c.name, c.passed, c.rule) for c in decision.checks]
    assert lines == [
        ("requester signature", True, None), ("requester", True, None), ("psbt digest", True, None),
        ("psbt review", True, None), (f"approval {FP['bob']}", True, None), (f"approval {FP['carol']}", True, None),
        ("request created", True, None), ("request expiry", True, None), ("policy expiry", True, None),
        ("chain tip", True, None), ("nonce", True, None), ("wallet", True, None), ("network", True, None),
        ("wallet", True, "exchange"), ("destinations", True, "exchange"), ("max per tx", True, "exchange"),
        ("velocity 24h", True, "exchange"), ("fee", True, "exchange"), ("fee rate", True, "exchange"),
        ("fee percent", True, "exchange"), ("time window", True, "exchange"), ("approvals", True, "exchange")]
    detail = {c.name: c.detail for c in decision.checks if c.rule == "exchange"}
    assert detail["velocity 24h"] == "0.00350000 BTC signed + 0.00150000 BTC requested <= 0.00500000 BTC limit"
    assert detail["approvals"] == "2 of 2 required approvals from role 'treasurer': bob, carol"
    assert decision.to_json()["allowed"] is True and decision.to_json()["amount_sat"] == 150_000


def test_no_matching_rule_lists_why_each_rule_failed(tmp_path):
    scenario = Scenario(payments=[(FRESH_SCRIPT, 150_000)], more_rules=(replace(LARGE, destinations=("exchange",)),))
    decision = scenario.run(tmp_path)
    assert (decision.allowed, decision.rule) == (False, None)
    assert [(c.name, c.rule) for c in decision.failures] == [
        ("destinations", "exchange"), ("destinations", "large"), ("rules", None)]
    assert decision.failures[-1].detail == "no rule's conditions hold (rules tried: exchange, large): denied by default"


def test_amount_and_window_text():
    assert btc(120_000_000) == "1.20000000 BTC"
    assert btc(1) == "0.00000001 BTC"
    assert btc(2_100_000_000_000_000) == "21000000.00000000 BTC"
    assert [window_text(s) for s in (86_400, 604_800, 3_600, 1_800, 90, 172_800)] == \
           ["24h", "7d", "1h", "30m", "90s", "2d"]


def test_a_naive_now_is_a_caller_bug(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        Scenario(now=datetime(2025, 3, 4, 14, 5)).run(tmp_path)


# --- property: no bundle that fails any check is ever allowed ------------------------------------

def _deny(s: Scenario) -> None:
    s.rule = replace(s.rule, action="deny", approvals=None)


def _bad_approval_by_bob(s: Scenario) -> None:
    s.approval_over_other_psbt = "bob"
    if "bob" not in s.approvers:
        s.approvers = (*s.approvers, "bob")


# Faults of the request itself: no rule can rescue them.
REQUEST_FAULTS: dict[str, Callable[[Scenario], None]] = {
    "requester forged": setting(requester_signs_as="carol"),
    "requester unknown": setting(requester="mallory"),
    "other psbt carried": setting(carried_psbt_other=True),
    "expired": setting(now=EXPIRES + timedelta(seconds=SKEW + 1)),
    "from the future": setting(created=NOW + timedelta(seconds=SKEW + 1)),
    "policy expired": setting(expires="2025-03-01T00:00:00Z"),
    "stale tip": setting(tip_height=150),
    "replayed nonce": setting(ledger_nonces=(NONCE,)),
    "wrong wallet": setting(request_wallet="hot"),
    "wrong network": setting(network="signet"),
    "approval over other psbt": _bad_approval_by_bob,       # applied last (see below)
}
# Faults against the "exchange" rule: its conditions or its approvals.
RULE_FAULTS: dict[str, Callable[[Scenario], None]] = {
    "one approval short": setting(approvers=("carol",)),
    "initiator approves": setting(approvers=("alice", "carol")),       # alice requested: not counted
    "unknown approver": setting(approvers=("mallory", "carol")),       # a key the policy does not name
    "approver outside the group": setting(approvers=("dave", "carol")),  # an officer, not a treasurer
    "role missing": with_approvals(require_roles=("cfo",)),   # no treasurer holds it
    "deny rule": _deny,
    "rule wallet": with_rule(wallets=("hot",)),
    "fresh address": setting(payments=[(FRESH_SCRIPT, 150_000)]),
    "over max per tx": with_rule(max_per_tx_sat=100_000),
    "over velocity": setting(ledger_signed=((400_000, NOW - timedelta(hours=2)),)),
    "fee over": with_rule(fee=FeeCaps(max_sat=FEE - 1)),
    "fee rate over": with_rule(fee=FeeCaps(max_rate_sat_vb=1)),
    "fee percent over": with_rule(fee=FeeCaps(max_percent=0.1)),
    "outside hours": with_rule(hours=TimeWindow(days=(5, 6))),
}
ORDER = [*RULE_FAULTS, *REQUEST_FAULTS]
FAULTS = {**RULE_FAULTS, **REQUEST_FAULTS}
CATCH_ALL = Rule(name="catch-all", wallets=(ANY,), destinations=ANY,
                 approvals=Approvals(threshold=1, group="treasurer", initiator_may_approve=True))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.sampled_from(ORDER), max_size=5), st.booleans())
def test_no_failing_bundle_is_ever_allowed(faults, catch_all):
    """Any fault refuses; a permissive later rule may take over only when the first rule does not
    match, never rescue a request that fails its own checks or the deciding rule's approvals."""
    if "expired" in faults:     # a request cannot be both expired and not yet created
        faults = faults - {"from the future"}
    scenario = Scenario(more_rules=(CATCH_ALL,) if catch_all else ())
    for name in ORDER:
        if name in faults:
            FAULTS[name](scenario)
    with tempfile.TemporaryDirectory() as folder:
        decision = scenario.run(Path(folder))
    assert decision.allowed == (decision.rule is not None and not decision.failures)
    if not faults:
        assert decision.allowed and decision.rule == "exchange"
    elif faults & set(REQUEST_FAULTS) or not catch_all:
        assert not decision.allowed, faults
        assert decision.failures
    else:
        assert not (decision.allowed and decision.rule == "exchange"), faults


# --- a deny rule's destinations; a request expiring at the end of the calendar --------------------

BLOCKED_BOOK = (AddressBookEntry("exchange", addresses=(EXTERNAL,)),
                AddressBookEntry("blocked", addresses=(address_of(FRESH_SCRIPT, Network.REGTEST),)))
DENY_BLOCKED = Rule(name="no-blocked", wallets=(ANY,), destinations=("blocked",), approvals=None, action="deny")


def test_a_deny_rule_matches_when_any_payment_goes_to_its_destinations(tmp_path):
    """One more output to an allowed address must not take a payment to a denied one past the deny
    rule to a permissive rule after it."""
    fresh = address_of(FRESH_SCRIPT, Network.REGTEST)
    scenario = Scenario(book=BLOCKED_BOOK, rule=DENY_BLOCKED, more_rules=(CATCH_ALL,),
                        payments=[(FRESH_SCRIPT, 100_000), (W.EXTERNAL_SCRIPT, 50_000)])
    decision = scenario.run(tmp_path)
    assert (decision.allowed, decision.rule) == (False, "no-blocked")
    assert [(c.name, c.detail) for c in decision.failures] == [
        ("action", "rule 'no-blocked' denies what it matches")]
    matched = {c.name: c.detail for c in decision.checks if c.rule == "no-blocked"}
    assert matched["destinations"] == f"output 0 ({fresh}) in the address book entries blocked"


def test_a_deny_rule_does_not_match_when_no_payment_goes_there(tmp_path):
    scenario = Scenario(book=BLOCKED_BOOK, rule=DENY_BLOCKED, more_rules=(CATCH_ALL,))
    decision = scenario.run(tmp_path)
    assert (decision.allowed, decision.rule) == (True, "catch-all")
    [destinations] = [c for c in decision.checks if c.rule == "no-blocked" and c.name == "destinations"]
    assert (destinations.passed, destinations.detail) == (False, "no payment (1) goes to blocked")


def test_a_request_expiring_at_the_end_of_the_calendar_is_a_decision_not_a_crash(tmp_path):
    """expires 9999-12-31T23:59:59Z plus the clock skew allowance is past datetime's range."""
    scenario = Scenario(created=datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc), lifetime=3_599)
    decision = scenario.run(tmp_path)
    assert (decision.allowed, decision.rule) == (False, "exchange")
    assert [(c.name, c.detail) for c in decision.failures] == [
        ("request created", "created 9999-12-31T23:00:00Z, signer's clock 2025-03-04T14:05:00Z, clock skew "
                            "allowance 300 s: created in the future")]
    assert {c.name: c.passed for c in decision.checks}["request expiry"] is True


def test_address_book_names_each_output_it_holds_by_address_or_descriptor():
    from coldsign.policy.evaluate import address_book_names

    book = (AddressBookEntry("exchange", addresses=(EXTERNAL.upper(),)),   # bech32 in capitals: the same address
            AddressBookEntry("cold-store", descriptors=(OWN_COLD.canonical(),), gap=10),
            AddressBookEntry("exchange-again", addresses=(EXTERNAL,)))
    policy = Scenario(book=book).policy()
    _, reviewed = psbt_and_review([(W.EXTERNAL_SCRIPT, 100_000), (OWN_COLD.script_pubkey(0, 9), 20_000),
                                   (OWN_COLD.script_pubkey(0, 10), 20_000), (FRESH_SCRIPT, 10_000)])
    by_script = {o.script_pubkey: o.index for o in reviewed.outputs}
    names = address_book_names(policy, reviewed)
    # the first entry holding an output names it; beyond the descriptor's gap, or unlisted: no name
    assert names == {by_script[W.EXTERNAL_SCRIPT]: "exchange", by_script[OWN_COLD.script_pubkey(0, 9)]: "cold-store"}
