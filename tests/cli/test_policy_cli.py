"""`coldsign policy init | show | approve-doc | verify | install`, as users run them.

Policies: tests/data/policy (README there): treasury.toml v1 (admins 2 of alice, bob, dave) and
treasury-v2-rotated.toml (bob -> erin, dave -> frank). Admins sign through `policy approve-doc
--mnemonic-file` with word files of the seeds of entropy 0x01..0x06 * 16 (alice, bob, carol: the
tests/walletkit.py seeds; dave, erin, frank written the same way). Each test has its own home folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldsign.cli.main import app
from coldsign.policy import document as D
from coldsign.policy import installed as I

DATA = Path(__file__).parent.parent / "data" / "policy"
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank")
V1_DIGEST = "37e056d25d30fb19b150b4026255a5522fd2d36980da2b5ffdc9d62bd3199758"


def invoke(*args: str):
    # a wide terminal, so the rule table's headers are not wrapped (Rich reads COLUMNS)
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, [str(a) for a in args])


def one_json(result) -> dict:
    """stdout is exactly one JSON document."""
    return json.loads(result.stdout)


@pytest.fixture()
def env(tmp_path):
    from embit import bip39

    words = {}
    for i, name in enumerate(PEOPLE, 1):
        path = tmp_path / f"{name}-words.txt"
        path.write_text(bip39.mnemonic_from_bytes(bytes([i]) * 16) + "\n")
        path.chmod(0o600)
        words[name] = path
    work = tmp_path / "work"
    work.mkdir()
    for f in ("treasury.toml", "treasury-v2-rotated.toml"):
        (work / f).write_text((DATA / f).read_text())
    return {"home": tmp_path / "home", "words": words, "v1": work / "treasury.toml",
            "v2": work / "treasury-v2-rotated.toml", "work": work}


def approve(env, policy: Path, name: str) -> Path:
    out = env["work"] / f"{policy.stem}.{name}.sig.json"
    result = invoke("--home", env["home"], "policy", "approve-doc", policy, "--mnemonic-file", env["words"][name],
                    "--out", out, "--json")
    assert result.exit_code == 0, result.output
    return out


def test_init_writes_the_commented_done_when_example(env):
    out = env["work"] / "new.toml"
    assert invoke("policy", "init", out).exit_code == 2          # no network: never assumed
    result = invoke("--network", "regtest", "policy", "init", out, "--json")
    assert result.exit_code == 0, result.output
    assert one_json(result) == {"out": str(out), "network": "regtest"}
    text = out.read_text()
    assert text.count("\n#") > 20 and 'network = "regtest"' in text
    # unedited, the placeholders are refused, naming the first one
    shown = invoke("policy", "show", out, "--json")
    assert shown.exit_code == 3
    assert one_json(shown)["error"]["message"].startswith('approvers[1].key: "<treasurer-1 identity public key>" '
                                                          "is not 64 hex digits")
    # filled in, it says: treasury up to 5 BTC a day to the exchange with 2 of 3 treasurers; anything
    # else 3 of 4 approvers including the CFO; admins 2 of 3
    v1 = D.parse_policy((DATA / "treasury.toml").read_bytes())
    keys = {f"<{n} identity public key>": a.public_key.hex()
            for n, a in zip(("treasurer-1", "treasurer-2", "treasurer-3", "cfo"), v1.approvers)}
    keys["<exchange deposit address>"] = v1.address_book[0].addresses[0]
    for placeholder, value in keys.items():
        text = text.replace(placeholder, value)
    assert "<" not in re.sub(r"#.*", "", text)
    p = D.parse_policy(text)
    daily, rest = p.rules
    assert (daily.wallets, daily.destinations, daily.max_per_tx_sat) == (("treasury",), ("exchange",), 500_000_000)
    assert [(v.window_seconds, v.max_sat) for v in daily.velocity] == [(86_400, 500_000_000)]
    assert (daily.approvals.threshold, daily.approvals.group, daily.approvals.initiator_may_approve) == \
        (2, "treasurer", False)
    assert len([a for a in p.approvers if "treasurer" in a.roles]) == 3
    assert (rest.wallets, rest.destinations) == (("any",), "any")
    assert (rest.approvals.threshold, rest.approvals.group, rest.approvals.require_roles) == (3, "approver", ("cfo",))
    assert len([a for a in p.approvers if "approver" in a.roles]) == 4
    assert (p.admins.threshold, p.admins.role, len([a for a in p.approvers if "admin" in a.roles])) == (2, "admin", 3)
    # an existing file is not overwritten without --force
    again = invoke("--network", "regtest", "policy", "init", out, "--json")
    assert again.exit_code == 4 and one_json(again)["error"]["code"] == "exists"
    assert invoke("--network", "regtest", "policy", "init", out, "--force").exit_code == 0


def test_show_renders_the_rules_and_the_digest(env):
    result = invoke("policy", "show", env["v1"], "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert (doc["digest"], doc["version"], doc["name"], doc["expires"]) == (V1_DIGEST, 1, "treasury",
                                                                            "2099-12-31T23:59:59Z")
    assert doc["rules_view"][0] == {"rule": "treasury-to-exchange", "action": "allow", "wallets": "treasury",
                                    "destinations": "exchange", "per_tx": "5 BTC", "velocity": "5 BTC / 24h",
                                    "fees": "≤ 100000 sat, ≤ 200 sat/vB",
                                    "approvals": '2 of "treasurer"; not the initiator', "hours": "any time"}
    assert doc["rules_view"][1]["approvals"] == '3 of "approver" incl. "cfo"; not the initiator'
    human = invoke("policy", "show", env["v1"])
    assert human.exit_code == 0
    for text in ("per-tx max", "velocity", "approvals", "37e056d2 5d30fb19", "version 1", "2099-12-31T23:59:59Z",
                 "da72-fc09-761f-027b"):
        assert text in human.stdout
    nothing = invoke("--home", env["home"], "policy", "show", "--json")
    assert nothing.exit_code == 3 and one_json(nothing)["error"]["message"] == "no policy is installed on this signer"


def test_approve_doc_signs_the_digest_with_the_identity_key(env):
    from coldsign.keys.identity import verify

    result = invoke("--home", env["home"], "policy", "approve-doc", env["v1"], "--mnemonic-file",
                    env["words"]["alice"], "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert doc["out"] == str(env["work"] / "treasury.v1.da72-fc09-761f-027b.sig.json")
    assert (doc["policy_digest"], doc["policy_version"], doc["fingerprint"], doc["named_in_policy"]) == \
        (V1_DIGEST, 1, "da72-fc09-761f-027b", "alice")
    file = json.loads(Path(doc["out"]).read_text())
    assert set(file) == {"format", "version", "policy_digest", "policy_version", "signer", "signature"}
    assert (file["format"], file["version"], file["signer"]) == ("coldsign-policy-signature", 1, doc["signer"])
    assert verify(bytes.fromhex(file["signer"]), "policy/v1", bytes.fromhex(V1_DIGEST),
                  bytes.fromhex(file["signature"]))
    # a broken policy is refused before any secret is read
    broken = env["work"] / "broken.toml"
    broken.write_text(env["v1"].read_text().replace("version = 1", "version = -1"))
    bad = invoke("policy", "approve-doc", broken, "--mnemonic-file", env["work"] / "missing-words.txt", "--json")
    assert bad.exit_code == 3 and one_json(bad)["error"]["message"].startswith("version: must be from 1")


def test_verify_explains_who_signed_and_exits_5_without_quorum(env):
    alice, carol, erin = (approve(env, env["v1"], n) for n in ("alice", "carol", "erin"))
    other = approve(env, env["v2"], "bob")
    result = invoke("--home", env["home"], "policy", "verify", env["v1"], alice, carol, erin, other, "--json")
    assert result.exit_code == 5, result.output
    doc = one_json(result)
    assert (doc["ok"], doc["met"], doc["signers"], doc["rollback"]) == (False, False, ["alice"], False)
    assert doc["authority"] == {"source": "self", "name": "treasury", "version": 1}
    rows = {Path(s["file"]).name: (s["name"], s["roles"], s["counts"], s["reason"]) for s in doc["signatures"]}
    assert rows[alice.name] == ("alice", ["admin", "approver", "treasurer"], True, "")
    assert rows[carol.name] == ("carol", ["approver", "treasurer"], False, 'carol does not hold the admin role "admin"')
    assert rows[erin.name][2] is False and rows[erin.name][3].endswith('the new policy "treasury" v1 does not name')
    assert rows[other.name][3].startswith("signed another policy")
    human = invoke("--home", env["home"], "policy", "verify", env["v1"], alice, carol)
    assert human.exit_code == 5 and "quorum NOT met" in human.stdout and "error: quorum NOT met" in human.stderr
    bob = approve(env, env["v1"], "bob")
    ok = invoke("--home", env["home"], "policy", "verify", env["v1"], alice, bob, "--json")
    assert ok.exit_code == 0 and one_json(ok)["signers"] == ["alice", "bob"]


def test_install_first_rollback_and_rotation(env):
    home = env["home"]
    alice, bob = approve(env, env["v1"], "alice"), approve(env, env["v1"], "bob")
    no_first = invoke("--home", home, "policy", "install", env["v1"], alice, bob, "--json")
    assert no_first.exit_code == 4 and one_json(no_first)["error"]["code"] == "policy-first-install"
    wrong_net = invoke("--home", home, "--network", "main", "policy", "install", env["v1"], alice, bob, "--first")
    assert wrong_net.exit_code == 3
    human = invoke("--home", home, "policy", "install", env["v1"], alice, bob, "--first")
    assert human.exit_code == 0, human.output
    assert "37e056d2 5d30fb19 b150b402 6255a552" in human.stdout and "witnesses" in human.stdout
    assert json.loads((home / "policy" / "installed.json").read_text())["digest"] == V1_DIGEST
    shown = invoke("--home", home, "policy", "show", "--json")
    assert one_json(shown)["source"] == "installed" and one_json(shown)["digest"] == V1_DIGEST
    again = invoke("--home", home, "policy", "install", env["v1"], alice, bob, "--json")
    assert again.exit_code == 4 and one_json(again)["error"]["code"] == "policy-rollback"
    # rotation: v2 signed by its own new admins only is refused; by v1's quorum it installs
    erin, frank = approve(env, env["v2"], "erin"), approve(env, env["v2"], "frank")
    verify_new = invoke("--home", home, "policy", "verify", env["v2"], erin, frank, "--json")
    assert verify_new.exit_code == 5 and one_json(verify_new)["authority"]["source"] == "installed"
    refused = invoke("--home", home, "policy", "install", env["v2"], erin, frank, "--json")
    assert refused.exit_code == 4, refused.output
    error = one_json(refused)["error"]
    assert error["code"] == "policy-quorum" and [d["code"] for d in error["details"]] == ["signature-ignored"] * 2
    assert I.installed_policy(home).version == 1
    bob2, dave2 = approve(env, env["v2"], "bob"), approve(env, env["v2"], "dave")
    done = invoke("--home", home, "policy", "install", env["v2"], bob2, dave2, erin, "--json")
    assert done.exit_code == 0, done.output
    doc = one_json(done)
    assert (doc["version"], doc["first"], doc["previous"]["digest"]) == (2, False, V1_DIGEST)
    assert doc["quorum"]["signers"] == ["bob", "dave"]
    assert I.installed_policy(home).approver_by_key(bytes.fromhex(json.loads(frank.read_text())["signer"])).name \
        == "frank"


# ------------------------------------------------------------------ two signings at once

@pytest.mark.parametrize("second_rule", [False, True], ids=["one rule", "a permissive rule after it"])
def test_two_signings_at_once_cannot_pass_a_velocity_limit_together(tmp_path, monkeypatch, second_rule):
    """Signer alice, policy (tests/policykit.py) with a 24 h velocity of 200,000 sat; wallet "vault" is
    walletkit's wpkh wallet (alice's seed). Requests by carol, approved by alice and bob: A pays
    150,000 sat to EXTERNAL, B 140,000 sat (other coins). Each alone is within the limit, together
    they are not. While signing A waits at the password prompt (the seed is read after the policy
    decision), signing B runs to the end; A must then be refused, not recorded and not written.
    With a second rule "anything" (any wallet and destination, 2 treasurers) A would now be allowed
    by that rule: refused too, as a decision that changed after the operator saw it."""
    from datetime import datetime, timezone

    import policykit
    import walletkit as W
    from coldsign.cli import secrets
    from coldsign.policy.document import parse_policy
    from coldsign.policy.installed import install
    from coldsign.policy.ledger import Ledger
    from coldsign.policy.signatures import sign_policy

    home, keys = tmp_path / "alice", policykit.IDENTITIES
    text = policykit.treasury_policy(keys, velocity_24h="200000 sat")
    if second_rule:
        from coldsign.policy.examples import Person, Rule, policy_toml

        text = policy_toml(network="regtest", exchange=[policykit.EXTERNAL_ADDRESS],
                           people=[Person(n, k.public_hex, ("treasurer", "admin")) for n, k in keys.items()],
                           rules=[Rule("exchange-daily", 2, "treasurer", wallets=("vault",), destinations=("exchange",),
                                       max_per_tx="1 BTC", velocity_24h="200000 sat"),
                                  Rule("anything", 2, "treasurer")])
    text = text.encode()
    policy = parse_policy(text)
    install(home, text, [(f"{n}.sig", sign_policy(policy, keys[n])) for n in ("alice", "bob")], first=True,
            now=datetime.now(timezone.utc))
    words = W.write_mnemonic(tmp_path, "alice")
    assert invoke("--home", home, "--network", "regtest", "wallet", "register", "--name", "vault", "--descriptor",
                  W.descriptor("wpkh"), "--mnemonic-file", words, "--json").exit_code == 0
    wallet = W.wallet("wpkh")
    bundles = {}
    for name, amount, first_index in (("a", 150_000, 0), ("b", 140_000, 2)):
        _, psbt = W.honest("wpkh", payments=[(W.EXTERNAL_SCRIPT, amount)],
                           coins=[W.coin(wallet, 0, first_index), W.coin(wallet, 0, first_index + 1)])
        bundles[name] = tmp_path / f"{name}.bundle"
        policykit.write_bundle(bundles[name], psbt.serialize(), keys["carol"], [keys["alice"], keys["bob"]],
                               tip_height=100, tip_hash="00" * 32, memo=name)

    def sign(name: str):
        return invoke("--home", home, "psbt", "sign", "-", "--request", bundles[name], "--mnemonic-file", words,
                      "--out", tmp_path / f"{name}.signed.psbt", "--json")

    real_load_seed, others = secrets.load_seed, {}

    def load_seed_while_b_signs(*args, **kwargs):
        if "b" not in others:           # only A's prompt; B reads its seed at once
            others["b"] = None
            others["b"] = sign("b")
        return real_load_seed(*args, **kwargs)

    monkeypatch.setattr(secrets, "load_seed", load_seed_while_b_signs)
    a = sign("a")
    b = others["b"]
    assert b.exit_code == 0, b.output
    assert a.exit_code == 4, a.output
    error = one_json(a)["error"]
    if second_rule:
        assert (error["code"], error["message"]) == (
            "policy-decision-changed", "the deciding rule changed while signing (rule 'exchange-daily' when the "
            "request was evaluated, 'anything' now); nothing was written")
    else:
        assert error["code"] == "policy-refused"
        assert [(d["check"], d["detail"]) for d in error["details"]] == [
            ("velocity 24h", "0.00140000 BTC signed + 0.00150000 BTC requested > 0.00200000 BTC limit"),
            ("rules", "no rule's conditions hold (rules tried: exchange-daily): denied by default")]
    assert not (tmp_path / "a.signed.psbt").exists() and (tmp_path / "b.signed.psbt").exists()
    with Ledger.open(home) as ledger:
        assert [e.amount_sat for e in ledger.signed()] == [140_000]
        [refusal] = ledger.refusals()
        assert refusal.reason == (error["message"] if second_rule else
                                  "velocity 24h: 0.00140000 BTC signed + 0.00150000 BTC requested > 0.00200000 "
                                  "BTC limit; rules: no rule's conditions hold (rules tried: exchange-daily): "
                                  "denied by default")
