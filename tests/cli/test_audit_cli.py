"""`coldsign audit verify | report` as an auditor runs them: exit codes, the one JSON document, the
first bad entry named on stderr.

The log, in words: alice (walletkit seed "alice", words in a file) keeps it in her home folder,
appending with `CeremonyLog.append`: one ceremony — opened, approvals checked (2 of 2), signatures
produced, closed — and exports it with `coldsign log export` (which signs the checkpoint). The
roster file lists alice and bob. For the chain tests the withdrawal is a real transaction on the
embedded regtest chain: `coldsign regtest fund` pays 0.5 BTC to a fixed P2WPKH address (hash
0x44…) from the miner's coins, and the log records that txid and its outputs (the 0.5 BTC and the
miner's change) as the signed PSBT's.
"""

from __future__ import annotations

import json

import pytest

import walletkit
from embit import bech32
from typer.testing import CliRunner

from coldsign.ceremony import events
from coldsign.ceremony.checkpoint import origin_for
from coldsign.ceremony.log import CeremonyLog
from coldsign.chain.regtest import RegtestChain
from coldsign.cli.main import app
from coldsign.keys import roster as rosters
from coldsign.keys.identity import IdentityKey
from coldsign.keys.roster import Custodian, Roster
from coldsign.network import Network

ALICE = IdentityKey.from_seed(walletkit.seed("alice"))
BOB = IdentityKey.from_seed(walletkit.seed("bob"))
ADDRESS = bech32.encode("bcrt", 0, bytes([0x44]) * 20)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_json(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout        # exactly one JSON document
    return json.loads(lines[0])


def roster_file(tmp_path):
    path = tmp_path / "roster.json"
    rosters.save(path, Roster((Custodian("Alice Ng", "custodian", ALICE.public_key),
                               Custodian("Bob Ruiz", "witness", BOB.public_key))))
    return path


def ceremony(home, txid="ab" * 32, outputs=((ADDRESS, 150_000), (ADDRESS, 49_000))):
    log = CeremonyLog(home)
    log.append(events.CEREMONY_OPENED, events.ceremony_opened(["Alice Ng", "Bob Ruiz"], "0.1.0", "aa" * 32, "laptop"),
               ALICE)
    log.append(events.APPROVALS_CHECKED, events.approvals_checked(True, 2, [ALICE.fingerprint, BOB.fingerprint]),
               ALICE)
    log.append(events.SIGNATURES_PRODUCED, events.signatures_produced("11" * 32, "22" * 32, [0], txid,
                                                                      list(outputs)), ALICE)
    log.append(events.CEREMONY_CLOSED, events.ceremony_closed("signed"), ALICE)
    return log


def export(tmp_path, home, name="export.json"):
    words = walletkit.write_mnemonic(tmp_path, "alice")
    out = tmp_path / name
    result = invoke("--home", home, "log", "export", "--out", out, "--mnemonic-file", words, "--json")
    assert result.exit_code == 0, result.output
    return out


def test_help_has_examples():
    for command in ("verify", "report"):
        result = invoke("audit", command, "--help")
        assert result.exit_code == 0 and "Example: coldsign audit" in result.stdout


def test_verify_an_export_made_by_log_export(tmp_path):
    home = tmp_path / "home"
    ceremony(home)
    path = export(tmp_path, home)
    result = invoke("audit", "verify", path, "--roster", roster_file(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert doc["ok"] is True and doc["entries"] == 4 and doc["errors"] == []
    assert doc["checkpoint"]["origin"] == origin_for(ALICE.fingerprint) and doc["checkpoint"]["size"] == 4
    assert [s["name"] for s in doc["checkpoint"]["signers"]] == ["Alice Ng"]
    assert [(s["name"], s["entries"]) for s in doc["signers"]] == [("Alice Ng", 4)]
    assert [(w["index"], w["txid"], w["amount_sat"], w["chain"]) for w in doc["withdrawals"]] == [
        (2, "ab" * 32, 199_000, "unchecked")]
    human = invoke("audit", "verify", path, "--roster", roster_file(tmp_path))
    assert human.exit_code == 0 and "OK:" in human.stdout and "4 entries verified" in human.stdout


def test_a_tampered_export_exits_5_naming_the_first_bad_entry(tmp_path):
    home = tmp_path / "home"
    ceremony(home)
    path = export(tmp_path, home)
    path.write_bytes(path.read_bytes().replace(b"amount_sat\\\":150000", b"amount_sat\\\":950000"))
    result = invoke("audit", "verify", path, "--roster", roster_file(tmp_path), "--json")
    assert result.exit_code == 5
    doc = one_json(result)
    assert doc["ok"] is False and doc["errors"][0] == {
        "index": 2, "code": "bad-signature", "message": "the signature does not verify against the actor's key"}
    assert "FAILED: entry 2: [bad-signature] the signature does not verify" in result.stderr
    human = invoke("audit", "verify", path, "--roster", roster_file(tmp_path))
    assert human.exit_code == 5 and human.stderr.startswith("FAILED: entry 2: [bad-signature]")


def test_a_reformatted_export_is_not_what_was_exported(tmp_path):
    home = tmp_path / "home"
    ceremony(home)
    path = export(tmp_path, home)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2))
    result = invoke("audit", "verify", path, "--roster", roster_file(tmp_path), "--json")
    assert result.exit_code == 5
    assert [(e["index"], e["code"]) for e in one_json(result)["errors"]] == [(None, "not-canonical")]
    assert "FAILED: the log: [not-canonical] the export is not byte for byte" in result.stderr


def test_a_raw_log_with_its_checkpoint_and_a_previous_one(tmp_path):
    home = tmp_path / "home"
    log = ceremony(home)
    export(tmp_path, home)                                    # signs checkpoints/4.txt
    first = log.checkpoints / "4.txt"
    ceremony(home)
    export(tmp_path, home, "second.json")                     # signs checkpoints/8.txt
    roster = roster_file(tmp_path)
    result = invoke("audit", "verify", log.path, "--checkpoint", log.checkpoints / "8.txt", "--previous", first,
                    "--roster", roster, "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert doc["ok"] and doc["source"] == "log" and doc["entries"] == 8 and doc["previous"]["size"] == 4
    assert doc["truncation_checked"] is True

    # a raw log alone: its cut-off tail could not be noticed — said, not silently ok
    lines = log.path.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:6]))
    alone = invoke("audit", "verify", cut, "--roster", roster, "--json")
    assert alone.exit_code == 0 and one_json(alone)["truncation_checked"] is False
    warned = invoke("audit", "verify", cut, "--roster", roster)
    assert "warning: no checkpoint (--checkpoint or --previous)" in warned.output
    with_previous = invoke("audit", "verify", cut, "--roster", roster, "--previous", log.checkpoints / "8.txt", "--json")
    assert with_previous.exit_code == 5 and one_json(with_previous)["truncation_checked"] is True
    rollback = invoke("audit", "verify", tmp_path / "export.json", "--previous", log.checkpoints / "8.txt",
                      "--roster", roster, "--json")
    assert rollback.exit_code == 5
    assert one_json(rollback)["errors"] == [{"index": 4, "code": "rollback", "message": "rollback: the previous "
                                             "checkpoint covers 8 entries, this log only 4"}]


def test_usage_and_input_errors(tmp_path):
    home = tmp_path / "home"
    ceremony(home)
    path = export(tmp_path, home)
    roster = roster_file(tmp_path)
    no_roster = invoke("--home", tmp_path / "empty", "audit", "verify", path, "--json")
    assert no_roster.exit_code == 2 and one_json(no_roster)["error"]["message"] == "no roster given"
    both = invoke("audit", "verify", path, "--roster", roster, "--chain-source", "regtest", "--transactions",
                  tmp_path, "--json")
    assert both.exit_code == 2
    assert one_json(both)["error"]["message"] == "give one of --chain-source URL or --transactions DIR, not both"
    no_network = invoke("audit", "verify", path, "--roster", roster, "--transactions", tmp_path, "--json")
    assert no_network.exit_code == 2
    assert one_json(no_network)["error"]["message"] == ("checking against the chain needs the network of the "
                                                        "withdrawals' addresses")
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "something else"}')
    bad = invoke("audit", "verify", junk, "--roster", roster, "--json")     # no log: it does not verify
    assert bad.exit_code == 5
    [error] = one_json(bad)["errors"]
    assert (error["index"], error["code"]) == (None, "log-export")
    assert error["message"].startswith("not a coldsign log export")
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    nothing = invoke("audit", "verify", empty, "--roster", roster, "--json")
    assert nothing.exit_code == 5 and one_json(nothing)["ok"] is False
    assert one_json(nothing)["errors"][0]["code"] == "empty-log"


@pytest.mark.parametrize("entry", [0, 2, 3])
def test_an_export_damaged_past_reading_fails_naming_the_entry(tmp_path, entry):
    """A byte that breaks the export's JSON (a quote's escape removed inside entry N) is a failed
    verification (exit 5, the audit's JSON), naming the entry it falls in; so is a damaged header."""
    home = tmp_path / "home"
    ceremony(home)
    path = export(tmp_path, home)
    data = path.read_bytes()
    doc = json.loads(data)
    start = data.index(json.dumps(doc["entries"][entry]).encode())
    at = data.index(b'\\"', start + 2)                 # the first escaped quote inside that entry
    path.write_bytes(data[:at] + data[at + 1:])
    result = invoke("audit", "verify", path, "--roster", roster_file(tmp_path), "--json")
    assert result.exit_code == 5, result.output
    [error] = one_json(result)["errors"]
    assert (error["index"], error["code"]) == (entry, "log-export")
    human = invoke("audit", "verify", path, "--roster", roster_file(tmp_path))
    assert human.exit_code == 5 and human.stderr.startswith(f"FAILED: entry {entry}: [log-export] not a coldsign")
    path.write_bytes(data.replace(b'"version":1', b'"version":2', 1))
    result = invoke("audit", "verify", path, "--roster", roster_file(tmp_path), "--json")
    assert result.exit_code == 5 and one_json(result)["errors"][0]["index"] is None


def test_withdrawals_against_the_regtest_chain(regtest_home, tmp_path):
    funded = invoke("--home", regtest_home, "regtest", "fund", ADDRESS, "0.5", "--json")
    assert funded.exit_code == 0, funded.output
    txid = one_json(funded)["txid"]
    with RegtestChain.open(regtest_home / "regtest") as chain:
        raw = chain.get_transaction(txid)
    from embit.transaction import Transaction

    paid = [(o.script_pubkey.address(Network.REGTEST.embit), o.value) for o in Transaction.parse(raw).vout]
    assert paid[0] == (ADDRESS, 50_000_000)
    roster = roster_file(tmp_path)

    honest = tmp_path / "honest"
    ceremony(honest, txid, paid)
    path = export(tmp_path, honest, "honest.json")
    result = invoke("--home", regtest_home, "audit", "verify", path, "--roster", roster, "--chain-source", "regtest",
                    "--network", "regtest", "--json")
    assert result.exit_code == 0, result.output
    assert [w["chain"] for w in one_json(result)["withdrawals"]] == ["on-chain"]

    lying = tmp_path / "lying"
    ceremony(lying, txid, [(ADDRESS, 40_000_000)] + paid[1:])
    path = export(tmp_path, lying, "lying.json")
    result = invoke("--home", regtest_home, "--network", "regtest", "audit", "verify", path, "--roster", roster,
                    "--chain-source", "regtest", "--json")
    assert result.exit_code == 5
    [error] = one_json(result)["errors"]
    assert (error["index"], error["code"]) == (2, "pays-differently")
    assert error["message"] == (f"output 0 of transaction {txid} pays 50000000 sat to {ADDRESS}; the reviewed "
                                f"PSBT paid 40000000 sat to {ADDRESS}")

    txs = tmp_path / "txs"
    txs.mkdir()
    (txs / "withdrawal.hex").write_text(raw.hex() + "\n")
    by_file = invoke("audit", "verify", tmp_path / "honest.json", "--roster", roster, "--transactions", txs,
                     "--network", "regtest", "--json")
    assert by_file.exit_code == 0 and one_json(by_file)["withdrawals"][0]["chain"] == "on-chain"
    missing = tmp_path / "missing"
    ceremony(missing, "cd" * 32, paid)
    result = invoke("audit", "verify", export(tmp_path, missing, "missing.json"), "--roster", roster,
                    "--transactions", txs, "--network", "regtest", "--json")
    assert result.exit_code == 5 and one_json(result)["errors"][0]["code"] == "not-on-chain"


def test_report_writes_markdown_and_html(tmp_path):
    home = tmp_path / "home"
    ceremony(home)
    path = export(tmp_path, home)
    roster = roster_file(tmp_path)
    for fmt in ("md", "html"):
        out = tmp_path / f"report.{fmt}"
        result = invoke("audit", "report", path, "--roster", roster, "--format", fmt, "--out", out, "--json")
        assert result.exit_code == 0, result.output
        doc = one_json(result)
        assert doc == {"out": str(out), "format": fmt, "ok": True, "entries": 4, "withdrawals": 1, "errors": []}
        text = out.read_text()
        assert "ab" * 32 in text and "150,000 sat" in text and "Verification: OK" in text
    path.write_bytes(path.read_bytes().replace(b"laptop", b"laptoq"))
    failed = invoke("audit", "report", path, "--roster", roster, "--format", "md", "--out", tmp_path / "bad.md")
    assert failed.exit_code == 5 and "FAILED: entry 0: [bad-signature]" in failed.stderr
    assert "**Verification: FAILED**" in (tmp_path / "bad.md").read_text()
