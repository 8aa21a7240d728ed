"""A withdrawal under a signed policy, end to end on the embedded regtest chain, through the CLI.

The setup, in words:
  * wallet "vault": walletkit's wsh 2-of-3 sortedmulti (alice, bob, carol; 48h/1h/0h/2h), two coins of
    0.6 and 0.5 BTC mined to receive 0/0 and 0/1 on a copy of the session chain (tip 103 after funding).
  * custodians alice, bob, carol: identity keys derived from their walletkit seeds (index 0); each is a
    treasurer and an admin. Policy "treasury" v1 (TOML, regtest, clock skew 5m): admins 2 of admin;
    address book "exchange" = [walletkit's EXTERNAL P2WPKH]; one rule "exchange-daily": wallet vault,
    destinations exchange, at most 1 BTC per tx and 1.5 BTC per 24h, 2 treasurer approvals, the
    initiator not counted. Installed on the alice and bob signers (their own home folders) with
    alice's and bob's admin signatures (the first install, as in the key ceremony).
  * the coordinator's request (by alice, expires in 2 h, built on the current tip) for a PSBT paying
    0.7 BTC to EXTERNAL, change to 1/0 at 5 sat/vB; approved by bob and carol.

Then: alice signs with `psbt sign - --request` (the bundle's own PSBT), bob with the PSBT file; the
signatures finalize, pass libbitcoinkernel and are mined. The same bundle again is refused on both
signers (nonce), signing without a request is refused (`request-required`), and a withdrawal to a
fresh address with the same approvals is refused naming the rule and the output; each refusal is in
the signer's ledger and writes no file. `policy evaluate` gives the same decision as a dry run.

A lost ledger: carol's signer gets the policy through the CLI (`policy approve-doc` by alice and bob,
`policy install --first`), which binds it to carol's ledger; she signs one request, then her
`ledger.sqlite` is deleted. Signing (and the dry run) is refused with `ledger-missing` naming the
way back, also after a v2 signed by one admin only fails to install; v2 signed by the admin quorum
installs, binds the new, empty ledger, and the next request is signed.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

import policykit
import walletkit as W
from coldsign.cli.main import app
from coldsign.keys.identity import IdentityKey
from coldsign.network import Network
from coldsign.policy.document import parse_policy
from coldsign.policy.installed import install
from coldsign.policy.signatures import sign_policy
from coldsign.policy.ledger import Ledger
from coldsign.psbt.create import create_psbt
from coldsign.psbt.review import address_of

FRESH_SCRIPT = bytes.fromhex("0014") + bytes(range(100, 120))


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def run(*args: str) -> dict:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout)


def refused(*args: str, code: int = 4) -> dict:
    result = invoke(*args)
    assert result.exit_code == code, (args, result.output)
    return json.loads(result.stdout)["error"]


def policy_text(keys: dict[str, IdentityKey]) -> str:
    return policykit.treasury_policy(keys, velocity_24h="1.5 BTC")


@pytest.fixture()
def setup(tmp_path, session_chain_dir):
    from coldsign.chain.regtest import RegtestChain

    coordinator = tmp_path / "coordinator"
    shutil.copytree(session_chain_dir, coordinator / "regtest")
    wallet = W.wallet("wsh-sortedmulti")
    with RegtestChain.open(coordinator / "regtest") as chain:
        coins = W.fund(chain, wallet, [60_000_000, 50_000_000])
        tip = (chain.height, chain.tip_hash)
    keys = dict(policykit.IDENTITIES)
    text = policy_text(keys).encode()
    policy = parse_policy(text)
    signatures = [(f"{n}.sig", sign_policy(policy, keys[n])) for n in ("alice", "bob")]
    words = {}
    for name in ("alice", "bob"):
        home = tmp_path / name
        install(home, text, signatures, first=True, now=datetime.now(timezone.utc))
        words[name] = W.write_mnemonic(tmp_path, name)
        run("--home", str(home), "--network", "regtest", "wallet", "register", "--name", "vault",
            "--descriptor", W.descriptor("wsh-sortedmulti"), "--mnemonic-file", str(words[name]), "--json")
    return {"tmp": tmp_path, "coordinator": coordinator, "wallet": wallet, "coins": coins, "tip": tip,
            "keys": keys, "words": words}


def make_bundle(s, payments, name: str) -> tuple:
    psbt = create_psbt(s["wallet"], s["coins"], payments, fee_rate=5, change_index=0)
    raw = psbt.serialize()
    unsigned = s["tmp"] / f"{name}.psbt"
    unsigned.write_bytes(raw)
    path = s["tmp"] / f"{name}.bundle"
    request = policykit.write_bundle(path, raw, s["keys"]["alice"], [s["keys"][n] for n in ("bob", "carol")],
                                     tip_height=s["tip"][0], tip_hash=s["tip"][1], memo=f"{name} withdrawal")
    return path, unsigned, request


def sign_args(s, signer: str, psbt_arg: str, bundle_path, out) -> list[str]:
    return ["--home", str(s["tmp"] / signer), "psbt", "sign", psbt_arg, "--request", str(bundle_path),
            "--mnemonic-file", str(s["words"][signer]), "--out", str(out), "--json"]


def test_policy_withdrawal_signed_mined_and_replay_refused(setup):
    s = setup
    bundle_path, unsigned, request = make_bundle(s, [(W.EXTERNAL_SCRIPT, 70_000_000)], "exchange")

    dry = run("--home", str(s["tmp"] / "alice"), "policy", "evaluate", str(bundle_path), "--json")
    assert (dry["allowed"], dry["rule"], dry["amount_sat"]) == (True, "exchange-daily", 70_000_000)
    assert {c["name"]: c["passed"] for c in dry["checks"]}["velocity 24h"] is True

    signed = []
    for signer, psbt_arg in (("alice", "-"), ("bob", str(unsigned))):
        out = s["tmp"] / f"{signer}-signed.psbt"
        report = run(*sign_args(s, signer, psbt_arg, bundle_path, out))
        assert report["signed_inputs"] == 2
        assert report["policy"]["rule"] == "exchange-daily"
        assert report["policy"]["nonce"] == request.nonce
        assert all(c["passed"] for c in report["policy"]["checks"])
        checks = {c["name"]: c["detail"] for c in report["policy"]["checks"]}
        assert checks["approvals"] == "2 of 2 required approvals from role 'treasurer': bob, carol"
        assert checks["velocity 24h"] == "0.00000000 BTC signed + 0.70000000 BTC requested <= 1.50000000 BTC limit"
        with Ledger.open(s["tmp"] / signer) as ledger:
            [entry] = ledger.signed()
            assert (entry.nonce, entry.amount_sat, entry.tip_height, entry.rule) == \
                   (request.nonce, 70_000_000, s["tip"][0], "exchange-daily")
        signed.append(str(out))

    final = run("psbt", "finalize", *signed, "--out", str(s["tmp"] / "tx.hex"), "--json")
    assert final["consensus_checked"] is True
    mined = run("--home", str(s["coordinator"]), "psbt", "broadcast", str(s["tmp"] / "tx.hex"), "--regtest",
                "--json")
    assert mined["txid"] == final["txid"] and mined["height"] == s["tip"][0] + 1

    # The same bundle again: refused on both signers, nothing written, the refusal recorded.
    for signer in ("alice", "bob"):
        out = s["tmp"] / f"{signer}-again.psbt"
        error = refused(*sign_args(s, signer, "-", bundle_path, out))
        assert error["code"] == "policy-refused"
        assert [d["code"] for d in error["details"]] == ["nonce"]
        assert error["details"][0]["message"] == f"nonce: nonce {request.nonce} was already signed: a replay"
        assert not out.exists()
        with Ledger.open(s["tmp"] / signer) as ledger:
            assert len(ledger.signed()) == 1
            [refusal] = ledger.refusals()
            assert refusal.nonce == request.nonce and refusal.reason.startswith("nonce: ")

    # No request at all under an installed policy.
    error = refused("--home", str(s["tmp"] / "alice"), "psbt", "sign", str(unsigned), "--wallet", "vault",
                    "--mnemonic-file", str(s["words"]["alice"]), "--out", str(s["tmp"] / "bare.psbt"), "--json")
    assert error["code"] == "request-required"
    assert error["message"] == 'policy "treasury" v1 is in force on this signer: signing needs an approved request'
    assert not (s["tmp"] / "bare.psbt").exists()
    # ... and an unreadable request: both refusals are in the ledger, next to the replay's.
    garbled = s["tmp"] / "garbled.bundle"
    garbled.write_text('{"format": "coldsign-request-bundle/1"')
    refused("--home", str(s["tmp"] / "alice"), "psbt", "sign", "-", "--request", str(garbled), "--wallet", "vault",
            "--mnemonic-file", str(s["words"]["alice"]), "--out", str(s["tmp"] / "bare.psbt"), "--json", code=3)
    with Ledger.open(s["tmp"] / "alice") as ledger:
        *_, bare, unreadable = ledger.refusals()
        assert (bare.nonce, bare.rule, bare.reason) == (None, None, f"request-required: {error['message']}")
        assert unreadable.nonce is None and unreadable.reason.startswith("bad-bundle: the bundle is not valid JSON")


def test_withdrawal_to_a_fresh_address_is_refused_naming_the_rule(setup):
    s = setup
    bundle_path, unsigned, request = make_bundle(s, [(FRESH_SCRIPT, 70_000_000)], "fresh")
    fresh = address_of(FRESH_SCRIPT, Network.REGTEST)
    expected = f"output 0 ({fresh}) not in the address book entries exchange"

    error = refused("--home", str(s["tmp"] / "alice"), "policy", "evaluate", str(bundle_path), "--json")
    assert error["code"] == "policy-refused"

    out = s["tmp"] / "fresh-signed.psbt"
    error = refused(*sign_args(s, "alice", str(unsigned), bundle_path, out))
    assert error["code"] == "policy-refused"
    assert error["message"] == (f'policy "treasury" v1 refuses this request (no rule allows it): destinations: '
                                f"{expected} (and 1 more)")
    assert [(d["code"], d["rule"]) for d in error["details"]] == [("destinations", "exchange-daily"),
                                                                  ("rules", None)]
    assert error["details"][0]["message"] == f"rule exchange-daily: destinations: {expected}"
    assert not out.exists()
    with Ledger.open(s["tmp"] / "alice") as ledger:
        assert ledger.signed() == []
        [refusal] = ledger.refusals()
        assert (refusal.nonce, refusal.rule) == (request.nonce, None)
        assert expected in refusal.reason


def test_a_policy_file_other_than_the_installed_one_is_refused(setup):
    s = setup
    bundle_path, unsigned, _request = make_bundle(s, [(W.EXTERNAL_SCRIPT, 70_000_000)], "exchange")
    laxer = s["tmp"] / "laxer.toml"
    laxer.write_text(policy_text(s["keys"]).replace('max_per_tx = "1 BTC"', 'max_per_tx = "10 BTC"'))
    out = s["tmp"] / "lax-signed.psbt"
    error = refused(*sign_args(s, "alice", "-", bundle_path, out), "--policy", str(laxer))
    assert error["code"] == "policy-not-installed"
    assert error["message"].startswith(f'{laxer} is not the installed policy ("treasury" v1, digest ')
    assert not out.exists()


def test_a_lost_ledger_refuses_signing_until_the_admins_install_a_new_version(setup):
    s = setup
    tmp, home = s["tmp"], s["tmp"] / "carol"
    s["words"]["carol"] = W.write_mnemonic(tmp, "carol")
    at_carol = ("--home", str(home), "--network", "regtest")

    def policy_file(version: int):
        path = tmp / f"treasury-v{version}.toml"
        path.write_text(policy_text(s["keys"]).replace("version = 1", f"version = {version}"))
        return path

    def approve(path, *admins: str) -> list[str]:
        sigs = []
        for admin in admins:
            out = tmp / f"{path.stem}.{admin}.sig.json"
            run("--home", str(tmp / admin), "policy", "approve-doc", str(path), "--mnemonic-file",
                str(s["words"][admin]), "--out", str(out), "--json")
            sigs.append(str(out))
        return sigs

    def ledger_id() -> str:
        with Ledger.open(home, create=False) as ledger:
            return ledger.ledger_id

    v1 = policy_file(1)
    installed = run(*at_carol, "policy", "install", str(v1), *approve(v1, "alice", "bob"), "--first", "--json")
    first_id = ledger_id()
    assert installed["ledger_id"] == first_id
    assert json.loads((home / "policy" / "installed.json").read_text())["ledger_id"] == first_id
    run(*at_carol, "wallet", "register", "--name", "vault", "--descriptor", W.descriptor("wsh-sortedmulti"),
        "--mnemonic-file", str(s["words"]["carol"]), "--json")
    first_bundle, _unsigned, _request = make_bundle(s, [(W.EXTERNAL_SCRIPT, 70_000_000)], "first")
    assert run(*sign_args(s, "carol", "-", first_bundle, tmp / "first-signed.psbt"))["signed_inputs"] == 2

    # The ledger is lost (deleted with its WAL files): the signer no longer knows what it signed.
    for part in home.glob("ledger.sqlite*"):
        part.unlink()
    second_bundle, _unsigned, second = make_bundle(s, [(W.EXTERNAL_SCRIPT, 30_000_000)], "second")
    out = tmp / "second-signed.psbt"
    expected = {"code": "ledger-missing",
                "message": f"the policy was installed with ledger {first_id}, but {home / 'ledger.sqlite'} "
                           f"is missing",
                "hint": "the signer's record of what it signed is gone: ask the admin quorum to sign and install "
                        "a new policy version (that resets the ledger deliberately)"}
    error = refused(*sign_args(s, "carol", "-", second_bundle, out))
    assert {k: error.get(k) for k in expected} == expected
    assert {k: v for k, v in refused(*at_carol, "policy", "evaluate", str(second_bundle), "--json").items()
            if k in expected} == expected
    assert not out.exists() and not list(home.glob("ledger.sqlite*"))   # refused before any ledger exists

    # One admin is not the quorum: nothing installed, still refused.
    v2 = policy_file(2)
    result = invoke(*at_carol, "policy", "install", str(v2), *approve(v2, "alice"), "--json")
    assert result.exit_code == 4 and json.loads(result.stdout)["error"]["code"] == "policy-quorum"
    assert refused(*sign_args(s, "carol", "-", second_bundle, out))["code"] == "ledger-missing"

    # The admin quorum installs v2: the new, empty ledger is bound, and signing works again.
    installed = run(*at_carol, "policy", "install", str(v2), *approve(v2, "alice", "bob"), "--json")
    assert installed["version"] == 2 and installed["ledger_id"] == ledger_id() != first_id
    report = run(*sign_args(s, "carol", "-", second_bundle, out))
    assert (report["signed_inputs"], report["policy"]["version"]) == (2, 2)
    with Ledger.open(home) as ledger:
        assert [e.nonce for e in ledger.signed()] == [second.nonce]
