"""The auditor's report (`coldsign.ceremony.report`): what it shows, that values from the log are
escaped, and that the HTML page is self-contained and renders its withdrawals table in headless
Chromium (Debian package `chromium`, installed by scripts/setup).

The log, in words: alice's identity key keeps it; ceremony 1 (entries 0-5): opened by "Alice Ng"
and "Bob Ruiz" on a machine whose description carries HTML (`<b>laptop</b> </td>`), policy
"treasury" version 3, approvals 2 of 2, signatures produced for txid 0xab… paying 150,000 sat to
ADDRESS and 49,000 sat to CHANGE, closed; ceremony 2 (entries 6-8): opened, a refusal whose message
carries a script tag and Markdown pipes, closed. The export covers all 9 entries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import walletkit
from embit import bech32

from coldsign.ceremony import events, merkle
from coldsign.ceremony.audit import audit_export
from coldsign.ceremony.checkpoint import build_export, origin_for, sign_checkpoint
from coldsign.ceremony.log import ZERO_HASH, line_hash, make_entry
from coldsign.ceremony.report import ceremonies, render_html, render_markdown
from coldsign.keys.identity import IdentityKey
from coldsign.keys.roster import Custodian, Roster

ALICE = IdentityKey.from_seed(walletkit.seed("alice"))
BOB = IdentityKey.from_seed(walletkit.seed("bob"))
ROSTER = Roster((Custodian("Alice Ng", "custodian", ALICE.public_key),
                 Custodian("Bob Ruiz", "witness", BOB.public_key)))
ADDRESS = bech32.encode("bcrt", 0, bytes([0x44]) * 20)
CHANGE = bech32.encode("bcrt", 0, bytes([0x55]) * 20)
TXID = "ab" * 32
LABEL = "exchange <b>"                  # the policy's address-book name of the destination
EVIL = "<script>alert(1)</script> | `pipe` \n next"
MACHINE = "<b>laptop</b> </td>"


def signed_lines(steps) -> list[bytes]:
    lines, prev = [], ZERO_HASH
    for seq, (event, payload) in enumerate(steps):
        line = make_entry(seq, prev, event, payload, ALICE, datetime(2026, 3, 2, tzinfo=timezone.utc)
                          + timedelta(minutes=seq))
        lines.append(line)
        prev = line_hash(line)
    return lines


def test_each_decision_names_its_policy_and_each_close_its_checkpoint_root():
    """A decision logged with the policy that made it names it (the policy may have been installed
    in an earlier ceremony, outside this log's window); a ceremony's close shows the root `log close`
    signed (size = the close entry + 1) when the export holds the log from its first entry."""
    lines = signed_lines([
        (events.CEREMONY_OPENED, events.ceremony_opened(["Alice Ng"], "0.1.0", "aa" * 32, "laptop")),
        (events.POLICY_DECISION, events.policy_decision(True, [("exchange: approvals", True, "2 of 2")],
                                                        policy_sha256="cd" * 32, version=3, name="treasury")),
        (events.SIGNATURES_PRODUCED, events.signatures_produced("11" * 32, "22" * 32, [0], TXID,
                                                                [(ADDRESS, 150_000)])),
        (events.CEREMONY_CLOSED, events.ceremony_closed("signed")),
        (events.CEREMONY_OPENED, events.ceremony_opened(["Alice Ng"], "0.1.0", "aa" * 32, "laptop")),
    ])
    checkpoint = sign_checkpoint(origin_for(ALICE.fingerprint), len(lines), merkle.tree_hash(lines), ALICE)
    result = audit_export(json.loads(json.dumps(build_export(lines, 0, checkpoint))), ROSTER)
    text = render_markdown(result)
    assert f'- **Policy decision:** allowed by policy "treasury" v3 (SHA-256 {"cd" * 32}), 1 check(s) (entry 1)' in text
    assert f"- **Checkpoint at close:** size 4, root {merkle.tree_hash(lines[:4]).hex()}" in text
    assert text.count("Checkpoint at close") == 1                 # the second ceremony is still open
    parsed = Tables()
    parsed.feed(render_html(result))
    assert ["Checkpoint at close", f"size 4, root {merkle.tree_hash(lines[:4]).hex()}"] in parsed.tables["ceremony"]


def the_log() -> list[bytes]:
    steps = [
        (events.CEREMONY_OPENED, events.ceremony_opened(["Alice Ng", "Bob Ruiz"], "0.1.0", "aa" * 32, MACHINE)),
        (events.POLICY_INSTALLED, events.policy_installed("bb" * 32, 3, "treasury")),
        (events.APPROVALS_CHECKED, events.approvals_checked(True, 2, [ALICE.fingerprint, BOB.fingerprint])),
        (events.SIGNATURES_PRODUCED, events.signatures_produced("11" * 32, "22" * 32, [0, 1], TXID,
                                                                [(ADDRESS, 150_000, False, LABEL), (CHANGE, 49_000)])),
        (events.EXPORTED, events.exported("bbqr", 3)),
        (events.CEREMONY_CLOSED, events.ceremony_closed("signed")),
        (events.CEREMONY_OPENED, events.ceremony_opened(["Alice Ng"], "0.1.0", "aa" * 32, "laptop")),
        (events.REFUSAL, events.refusal("max-fee", EVIL)),
        (events.CEREMONY_CLOSED, events.ceremony_closed("refused")),
    ]
    return signed_lines(steps)


LINES = the_log()
CHECKPOINT = sign_checkpoint(origin_for(ALICE.fingerprint), len(LINES), merkle.tree_hash(LINES), ALICE)


def result_of(lines=LINES):
    doc = json.loads(json.dumps(build_export(LINES, 0, CHECKPOINT)))
    doc["entries"] = [line.decode() for line in lines]
    return audit_export(doc, ROSTER)


def test_ceremonies_are_grouped_from_opening_to_closing():
    [first, second] = ceremonies(result_of())
    assert first.opened.index == 0 and first.closed.index == 5
    assert [r.payload["version"] for r in first.policies] == [3]
    assert [w.txid for w in first.withdrawals] == [TXID] and first.refusals == []
    assert second.opened.index == 6 and [r.payload["rule"] for r in second.refusals] == ["max-fee"]


def test_markdown_report():
    text = render_markdown(result_of(), title="q1.json")
    assert text.startswith("# Ceremony log audit: q1.json\n\n**Verification: OK**")
    assert f"| 3 | 2026-03-02T00:03:00Z | {ALICE.fingerprint} | {TXID} | {ADDRESS} \"exchange &lt;b>\": 150,000 sat " \
           "(0.00150000 BTC); " \
           f"{CHANGE}: 49,000 sat (0.00049000 BTC) | 199,000 sat (0.00199000 BTC) | unchecked |" in text
    assert f"| Checkpoint root | {CHECKPOINT.root.hex()} |" in text
    assert "- **Policy:** version 3 \"treasury\"" in text
    assert f"- **Approvals:** ok: 2 of 2 required: Alice Ng ({ALICE.fingerprint}), Bob Ruiz ({BOB.fingerprint})" in text
    assert "signer's clock, untrusted" in text
    assert "&lt;script>alert(1)&lt;/script> \\| \\`pipe\\`   next" in text     # no raw tag, pipe or newline
    assert "<script>" not in text


def test_markdown_report_of_a_failed_audit_names_the_problem_first():
    lines = list(LINES)
    lines[3] = lines[3].replace(b"150000", b"950000")
    text = render_markdown(result_of(lines))
    assert "**Verification: FAILED**\n\n- entry 3: \\[bad-signature\\] the signature does not verify" in text
    assert TXID not in text.split("## Withdrawals")[1].split("## Ceremony")[0]   # a bad entry is no withdrawal


class Tables(HTMLParser):
    """The text of each table cell, by the table's class; and every tag and attribute seen."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("class", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_html_is_one_escaped_self_contained_page():
    page = render_html(result_of(), title="q1 <export>.json")
    parsed = Tables()
    parsed.feed(page)
    assert "script" not in parsed.tags and not {"src", "href"} & {name for name, _ in parsed.attrs}
    assert "url(" not in page and "@import" not in page
    assert "<title>Ceremony log audit: q1 &lt;export&gt;.json</title>" in page
    [head, row] = parsed.tables["withdrawals"]
    assert head == ["Entry", "Time", "Signer", "Txid", "Destinations", "Total", "Chain"]
    assert row[0] == "3" and row[3] == TXID and row[5] == "199,000 sat (0.00199000 BTC)"
    assert row[4].startswith(f'{ADDRESS} "{LABEL}": 150,000 sat') and "b" not in parsed.tags
    ceremony_rows = parsed.tables["ceremony"]
    assert ["Machine", MACHINE] in ceremony_rows
    assert ["Refusal", f"rule max-fee: {EVIL} (entry 7)"] in ceremony_rows


def test_html_renders_the_withdrawals_table_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium")
    assert browser, "chromium is missing: run scripts/setup (it installs the Debian package chromium)"
    page = tmp_path / "report.html"
    page.write_text(render_html(result_of()), encoding="utf-8")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    parsed = Tables()
    parsed.feed(dom)
    assert "script" not in parsed.tags                     # the refusal's script tag stayed text
    rows = parsed.tables["withdrawals"]
    assert len(rows) == 2 and rows[1][3] == TXID
    assert f'{ADDRESS} "{LABEL}": 150,000 sat (0.00150000 BTC)' in rows[1][4] and f"{CHANGE}: 49,000 sat" in rows[1][4]
    assert rows[1][5] == "199,000 sat (0.00199000 BTC)"
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_change_is_marked_and_not_counted_as_leaving():
    from coldsign.ceremony.audit import Withdrawal

    w = Withdrawal(3, "2026-01-01T00:00:00Z", "abcd", "aa" * 32, (0,), (("bcrt1qpay", 150_000), ("bcrt1qchange", 49_000)),
                   "bb" * 32, "cc" * 32, change=(1,))
    assert w.amount_sat == 150_000
    assert [o["change"] for o in w.to_json()["outputs"]] == [False, True]
    assert "label" not in w.to_json()["outputs"][0]
    named = Withdrawal(3, "t", "abcd", "aa" * 32, (0,), (("bcrt1qpay", 150_000), ("bcrt1qchange", 49_000)),
                       "bb" * 32, "cc" * 32, change=(1,), labels=("exchange", ""))
    assert [o.get("label") for o in named.to_json()["outputs"]] == ["exchange", None]


def test_markdown_report_has_no_links_or_images_from_log_payloads():
    """A refusal message carrying Markdown link and image syntax must stay text: no clickable
    javascript: link and no remote image fetched when the auditor opens the report."""
    lines = list(LINES[:7])
    lure = "see [the signed tx](javascript:alert(1)) ![x](http://tracker.example/p.png)"
    for seq, (event, payload) in enumerate([(events.REFUSAL, events.refusal("max-fee", lure)),
                                            (events.CEREMONY_CLOSED, events.ceremony_closed("refused"))], 7):
        lines.append(make_entry(seq, line_hash(lines[-1]), event, payload, ALICE,
                                datetime(2026, 3, 2, tzinfo=timezone.utc)))
    cp = sign_checkpoint(origin_for(ALICE.fingerprint), len(lines), merkle.tree_hash(lines), ALICE)
    result = audit_export(json.loads(json.dumps(build_export(lines, 0, cp))), ROSTER)
    assert result.ok
    text = render_markdown(result)
    assert "see \\[the signed tx\\](javascript:alert(1)) !\\[x\\](http://tracker.example/p.png)" in text
    assert "[the signed tx]" not in text and "![x]" not in text
