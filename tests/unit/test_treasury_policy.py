"""The issue's "done when" policy, enforced: tests/data/policy/treasury.toml as written, evaluated.

"treasury: up to 5 BTC a day to the exchange allowlist with 2 of 3 treasurers' approval; anything
else needs 3 of 4 including the CFO role." People: alice, bob, carol (treasurers), dave (CFO); all
four are approvers; the initiator never approves their own request. Wallet "treasury" is
walletkit's wpkh account of alice (the policy only names it). Ledger: what this signer already
signed from "treasury" today. Now: 2030-06-03 10:00 UTC; the requests were made 10 minutes before.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from embit import bip39

import walletkit as W
from coldsign.cli.policy_evaluate import failures_text, refusal
from coldsign.keys.identity import IdentityKey
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey
from coldsign.network import Network
from coldsign.policy.document import parse_policy
from coldsign.policy.evaluate import evaluate
from coldsign.policy.ledger import Ledger
from coldsign.policy.request import bundle_of, new_request, sign_approval
from coldsign.psbt.review import review

POLICY = parse_policy((Path(__file__).parents[1] / "data" / "policy" / "treasury.toml").read_bytes())
NOW = datetime(2030, 6, 3, 10, 0, tzinfo=timezone.utc)
BTC = 100_000_000
FRESH_SCRIPT = bytes.fromhex("0014") + bytes(range(100, 120))     # an address on no list


def _identity(entropy_byte: int) -> IdentityKey:
    words = bip39.mnemonic_from_bytes(bytes([entropy_byte]) * 16)
    return IdentityKey.from_seed(SeedKey.from_mnemonic(Secret(words)))


PEOPLE = {name: _identity(n) for n, name in enumerate(("alice", "bob", "carol", "dave"), 1)}


def test_the_people_are_the_policy_s_approvers():
    assert {a.name: a.public_key for a in POLICY.approvers} == {n: k.public_key for n, k in PEOPLE.items()}


def decide(tmp_path, amount_sat: int, *, signed_today_sat: int = 0, requester: str = "carol",
           approvers: tuple[str, ...] = (), to: bytes = W.EXTERNAL_SCRIPT):
    wallet = W.wallet("wpkh")
    _, psbt = W.honest(coins=[W.coin(wallet, 0, 0, amount_sat + 100_000)], payments=[(to, amount_sat)])
    reviewed = review(psbt, Network.REGTEST, wallet, wallet_name="treasury")
    raw = psbt.serialize()
    request = new_request(raw, wallet="treasury", requester=PEOPLE[requester].public_key,
                          now=NOW - timedelta(minutes=10), lifetime_seconds=7_200, tip_height=900,
                          tip_hash="ab" * 32, nonce="42" * 16)
    bundle = replace(bundle_of(request, PEOPLE[requester], raw),
                     approvals=tuple(sign_approval(request, PEOPLE[n]) for n in approvers))
    with Ledger.open(tmp_path) as ledger:
        if signed_today_sat:
            ledger.record_signed(nonce="01" * 16, psbt_sha256="22" * 32, wallet="treasury",
                                 amount_sat=signed_today_sat, signed_at=NOW - timedelta(hours=3), tip_height=899,
                                 tip_hash="cd" * 32, rule="treasury-to-exchange")
        return evaluate(POLICY, bundle, reviewed, ledger, NOW, wallet_name="treasury",
                        psbt_sha256=hashlib.sha256(raw).hexdigest())


def failed(decision) -> list[str]:
    return [f"{c.rule}: {c.name}" for c in decision.failures]


@pytest.mark.parametrize("signed_today, amount, approvers, allowed, rule, failing", [
    # up to 5 BTC a day to the exchange with 2 of 3 treasurers
    (0, 5 * BTC, ("alice", "bob"), True, "treasury-to-exchange", []),
    (2 * BTC, 3 * BTC, ("alice", "bob"), True, "treasury-to-exchange", []),
    # one treasurer is not enough, and the CFO is not a treasurer
    (0, 1 * BTC, ("alice",), False, "treasury-to-exchange", ["treasury-to-exchange: approvals"]),
    (0, 1 * BTC, ("alice", "dave"), False, "treasury-to-exchange", ["treasury-to-exchange: approvals"]),
    # past the day's 5 BTC the request falls to "anything else": 3 of 4 including the CFO
    (3 * BTC, 2 * BTC + 1, ("alice", "bob"), False, "anything-else",
     ["anything-else: approvals", "anything-else: role cfo"]),
    (3 * BTC, 2 * BTC + 1, ("alice", "bob", "dave"), True, "anything-else", []),
    (0, 5 * BTC + 1, ("alice", "bob", "dave"), True, "anything-else", []),
], ids=["5 BTC at once", "3 BTC after 2 today", "one treasurer", "a treasurer and the CFO",
        "over the day: two treasurers", "over the day: with the CFO", "over 5 BTC at once, with the CFO"])
def test_exchange_withdrawals(tmp_path, signed_today, amount, approvers, allowed, rule, failing):
    decision = decide(tmp_path, amount, signed_today_sat=signed_today, approvers=approvers)
    assert (decision.allowed, decision.rule, failed(decision)) == (allowed, rule, failing)


def test_anything_else_needs_three_of_four_including_the_cfo(tmp_path):
    fresh = dict(to=FRESH_SCRIPT, requester="dave")
    # three approvals without the CFO (the CFO initiated, and may not approve their own request)
    no_cfo = decide(tmp_path / "1", 1 * BTC, approvers=("alice", "bob", "carol"), **fresh)
    assert (no_cfo.allowed, no_cfo.rule, failed(no_cfo)) == (False, "anything-else", ["anything-else: role cfo"])
    with_cfo = decide(tmp_path / "2", 1 * BTC, to=FRESH_SCRIPT, requester="carol", approvers=("alice", "bob", "dave"))
    assert (with_cfo.allowed, with_cfo.rule) == (True, "anything-else")
    own = decide(tmp_path / "3", 1 * BTC, to=FRESH_SCRIPT, requester="dave", approvers=("alice", "bob", "dave"))
    assert (own.allowed, failed(own)) == (False, ["anything-else: approvals", "anything-else: role cfo"])


def test_a_refusal_past_the_daily_limit_says_why_the_daily_rule_was_passed_over(tmp_path):
    decision = decide(tmp_path, int(2.5 * BTC), signed_today_sat=3 * BTC, approvers=("alice", "bob"))
    velocity = "velocity 24h: 3.00000000 BTC signed + 2.50000000 BTC requested > 5.00000000 BTC limit"
    assert [f"{c.name}: {c.detail}" for c in decision.passed_over] == [velocity]
    err = refusal(decision, SimpleNamespace(policy=POLICY))
    assert err.message.startswith('policy "treasury" v1 refuses this request (rule \'anything-else\'): approvals: ')
    assert err.message.endswith("; passed over 'treasury-to-exchange': see below")
    assert err.details[-1] == {"code": "passed-over", "message": f"rule treasury-to-exchange did not match: {velocity}",
                               "check": "velocity 24h", "rule": "treasury-to-exchange",
                               "detail": velocity.removeprefix("velocity 24h: "), "passed_over": True}
    assert failures_text(decision).endswith(f"; passed over rule 'treasury-to-exchange': {velocity}")
