"""The auditor's report of a ceremony log, in Markdown or as one self-contained HTML page.

Built from an `AuditResult` (`coldsign.ceremony.audit`): the verdict first (OK, or the first bad
entry and the reason, then every problem), the checkpoint and who signed it, the signers of the
entries, then each ceremony (from ``ceremony-opened`` to ``ceremony-closed``): participants, policy
versions, policy decisions, approvals, withdrawals (txid, destinations, amounts, what the chain says)
and refusals. Times are the signer's clock and are marked untrusted: the order of events comes from
the log's sequence numbers, not from them.

The HTML page has its CSS inline and no scripts, images, fonts or links to fetch, so it opens
the same on an offline machine and can be archived as one file. Every value from the log is
escaped (`html.escape`); Markdown table cells have ``|``, backticks, ``<``, square brackets (no link
or image from a payload) and line breaks neutralised.

Pure: returns text; the CLI writes the file.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coldsign.amounts import format_btc
from coldsign.ceremony import events

if TYPE_CHECKING:
    from coldsign.ceremony.audit import AuditResult, Record, Withdrawal

UNTRUSTED = "signer's clock, untrusted"


@dataclass
class Ceremony:
    """The records between a ``ceremony-opened`` and its ``ceremony-closed`` (either may be missing)."""

    opened: "Record | None" = None
    closed: "Record | None" = None
    policies: list = field(default_factory=list)
    decisions: list = field(default_factory=list)
    approvals: list = field(default_factory=list)
    withdrawals: list = field(default_factory=list)
    refusals: list = field(default_factory=list)

    @property
    def first_index(self) -> int | None:
        items = [r.index for r in (self.opened, *self.policies, *self.decisions, *self.approvals,
                                   *self.refusals) if r is not None] + [w.index for w in self.withdrawals]
        return min(items) if items else None


def ceremonies(result: "AuditResult") -> list[Ceremony]:
    """The ceremonies of the log, in order; withdrawals are `result.withdrawals` (chain verdicts)."""
    by_index = {w.index: w for w in result.withdrawals}
    out: list[Ceremony] = []
    current: Ceremony | None = None
    for record in result.records():
        if record.event == events.CEREMONY_OPENED or current is None:
            current = Ceremony()
            out.append(current)
        if record.event == events.CEREMONY_OPENED:
            current.opened = record
        elif record.event == events.POLICY_INSTALLED:
            current.policies.append(record)
        elif record.event == events.POLICY_DECISION:
            current.decisions.append(record)
        elif record.event == events.APPROVALS_CHECKED:
            current.approvals.append(record)
        elif record.event == events.SIGNATURES_PRODUCED and record.index in by_index:
            current.withdrawals.append(by_index[record.index])
        elif record.event == events.REFUSAL:
            current.refusals.append(record)
        elif record.event == events.CEREMONY_CLOSED:
            current.closed = record
            current = None
    return out


def _named(w: "Withdrawal", n: int) -> str:
    """' "exchange"' after a destination the policy's address book names, else nothing."""
    return f' "{w.label(n)}"' if w.label(n) else ""


def _chain(w: "Withdrawal") -> str:
    """The chain's verdict, with the block that holds it when the chain source said."""
    return f"{w.chain} (block {w.height})" if w.height is not None else w.chain


def _sat(amount: int) -> str:
    return f"{amount:,} sat ({format_btc(amount)})"


def _verdict(result: "AuditResult") -> tuple[str, list[str]]:
    if result.ok:
        return "OK", [f"All {result.entries} entries verified" + (" and every withdrawal was found on the chain "
                      "paying what was signed" if result.chain_checked else " (withdrawals not checked against "
                      "the chain)") + "."]
    lines = []
    for p in result.problems:
        where = f"entry {p.index}" if p.index is not None else "log"
        lines.append(f"{where}: [{p.code}] {p.message}")
    return "FAILED", lines


def _facts(result: "AuditResult") -> list[tuple[str, str]]:
    cp = result.checkpoint
    rows = [("Source", f"{result.source}, entries {result.from_size}..{result.from_size + result.entries - 1}")]
    if cp is not None:
        signed = ", ".join(f"{s.name or '(not on the roster)'} ({s.fingerprint})" for s in result.checkpoint_signers)
        rows += [("Checkpoint", f"{cp.origin}, size {cp.size}"), ("Checkpoint root", cp.root.hex()),
                 ("Checkpoint signed by", signed or "nobody on the roster")]
    else:
        rows.append(("Checkpoint", "none given"))
    if result.previous is not None:
        rows.append(("Previous checkpoint", f"size {result.previous.size}, root {result.previous.root.hex()}"))
    rows.append(("Chain checked", "yes" if result.chain_checked else "no"))
    return rows


def _ceremony_lines(c: Ceremony, who, roots: dict[int, bytes]) -> list[tuple[str, str]]:
    """(label, text) facts of one ceremony, in reading order; `roots` maps a log size to its Merkle
    root (`_close_roots`)."""
    rows = []
    if c.opened is not None:
        p = c.opened.payload
        rows += [("Opened", f"entry {c.opened.index}, {c.opened.time} ({UNTRUSTED}) by {who(c.opened.actor)}"),
                 ("Participants", ", ".join(who(x) for x in p["participants"]) or "none listed"),
                 ("Software", f"{p['software_version']}, package SHA-256 {p['package_sha256']}"),
                 ("Machine", p["machine"])]
    else:
        rows.append(("Opened", "no ceremony-opened entry (entries before the first ceremony)"))
    for r in c.policies:
        name = f" \"{r.payload['name']}\"" if "name" in r.payload else ""
        rows.append(("Policy", f"version {r.payload['version']}{name}, SHA-256 {r.payload['policy_sha256']} "
                     f"(entry {r.index})"))
    for r in c.decisions:
        failed = [ch["rule"] for ch in r.payload["checks"] if not ch["ok"]]
        by = ""
        if "version" in r.payload:
            by = f" by policy \"{r.payload.get('name', '?')}\" v{r.payload['version']}" + (
                f" (SHA-256 {r.payload['policy_sha256']})" if "policy_sha256" in r.payload else "")
        rows.append(("Policy decision", ("allowed" if r.payload["allowed"] else "refused") + by
                     + f", {len(r.payload['checks'])} check(s)"
                     + (f", failed: {', '.join(failed)}" if failed else "") + f" (entry {r.index})"))
    for r in c.approvals:
        rows.append(("Approvals", f"{'ok' if r.payload['ok'] else 'NOT ok'}: {len(r.payload['approvers'])} of "
                     f"{r.payload['required']} required: {', '.join(who(x) for x in r.payload['approvers']) or 'none'} "
                     f"(entry {r.index})"))
    for r in c.refusals:
        rows.append(("Refusal", f"rule {r.payload['rule']}: {r.payload['message']} (entry {r.index})"))
    if c.closed is not None:
        outcome = c.closed.payload.get("outcome", "")
        rows.append(("Closed", f"entry {c.closed.index}, {c.closed.time} ({UNTRUSTED})"
                     + (f": {outcome}" if outcome else "")))
        root = roots.get(c.closed.index + 1)
        if root is not None:        # what `log close` signed, and the custodians wrote on paper
            rows.append(("Checkpoint at close", f"size {c.closed.index + 1}, root {root.hex()}"))
    return rows


def _close_roots(result: "AuditResult", found: list[Ceremony]) -> dict[int, bytes]:
    """The log's Merkle root at each ceremony's close (size: the close entry + 1), in one pass over
    the entries; none unless the export holds the log from entry 0 and verified."""
    from coldsign.ceremony import merkle

    if result.from_size != 0 or result.problems:
        return {}
    sizes = {c.closed.index + 1 for c in found if c.closed is not None}
    acc, roots = merkle.MerkleAccumulator(), {}
    for line in result.lines[:max(sizes, default=0)]:
        acc.append(merkle.leaf_hash(line))
        if acc.size in sizes:
            roots[acc.size] = acc.root()
    return roots


# --- Markdown ---------------------------------------------------------------------------------

def _md(text: object) -> str:
    """A value safe inside a Markdown table cell or line."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("<", "&lt;")
            .replace("[", "\\[").replace("]", "\\]").replace("\r", " ").replace("\n", " "))


def render_markdown(result: "AuditResult", *, title: str = "ceremony log") -> str:
    verdict, lines = _verdict(result)
    out = [f"# Ceremony log audit: {_md(title)}", "", f"**Verification: {verdict}**", ""]
    out += [f"- {_md(line)}" for line in lines] + [""]
    out += ["| | |", "|---|---|"] + [f"| {_md(k)} | {_md(v)} |" for k, v in _facts(result)] + [""]
    out += ["## Signers of the entries", "", "| Fingerprint | Name | Role | Entries |", "|---|---|---|---:|"]
    out += [f"| {_md(s.fingerprint)} | {_md(s.name or '(not on the roster)')} | {_md(s.role or '')} | {s.entries} |"
            for s in result.signers] + [""]
    out += ["## Withdrawals", "", f"Times: {UNTRUSTED}.", "",
            "| Entry | Time | Signer | Txid | Destinations | Total | Chain |", "|---:|---|---|---|---|---:|---|"]
    for w in result.withdrawals:
        dests = "; ".join(f"{_md(a)}{_md(_named(w, n))}: {_sat(s)}" + (" (change)" if n in w.change else "")
                          for n, (a, s) in enumerate(w.outputs))
        out.append(f"| {w.index} | {_md(w.time)} | {_md(w.actor)} | {_md(w.txid)} | {dests} | {_sat(w.amount_sat)} "
                   f"| {_md(_chain(w))} |")
    out.append("")
    found = ceremonies(result)
    roots = _close_roots(result, found)
    for n, c in enumerate(found, 1):
        out += [f"## Ceremony {n}", ""] + [f"- **{_md(k)}:** {_md(v)}"
                                           for k, v in _ceremony_lines(c, result.who, roots)]
        out += [f"- **Withdrawal:** entry {w.index}, txid {_md(w.txid)}, {_sat(w.amount_sat)}, chain: {_md(_chain(w))}"
                for w in c.withdrawals] + [""]
    return "\n".join(out)


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:75em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;word-break:break-all}
.ok{background:#e6f4e6;border:2px solid #3a3;padding:.6em}.failed{background:#fbe9e9;border:2px solid #c33;padding:.6em}
.note{color:#666;font-size:.9em}
@media print{body{margin:0}}
"""


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(head: list[str], rows: list[list[str]], cls: str = "", numeric: frozenset[int] = frozenset()) -> str:
    """A table; `rows` hold already-escaped HTML cells."""
    attr = f' class="{cls}"' if cls else ""
    heading = "<thead><tr>" + "".join(f"<th>{_h(h)}</th>" for h in head) + "</tr></thead>" if any(head) else ""
    out = [f"<table{attr}>{heading}<tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _withdrawal_rows(withdrawals: "list[Withdrawal] | tuple[Withdrawal, ...]") -> list[list[str]]:
    rows = []
    for w in withdrawals:
        dests = "<br>".join(f"<code>{_h(a)}</code>{_h(_named(w, n))}: {_h(_sat(s))}"
                            + (" (change)" if n in w.change else "") for n, (a, s) in enumerate(w.outputs))
        rows.append([str(w.index), _h(w.time), f"<code>{_h(w.actor)}</code>", f"<code>{_h(w.txid)}</code>", dests,
                     _h(_sat(w.amount_sat)), _h(_chain(w))])
    return rows


def render_html(result: "AuditResult", *, title: str = "ceremony log") -> str:
    verdict, lines = _verdict(result)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>Ceremony log audit: {_h(title)}</title>", f"<style>{_CSS}</style></head><body>",
             f"<h1>Ceremony log audit: {_h(title)}</h1>",
             f'<div id="verdict" class="{"ok" if result.ok else "failed"}"><strong>Verification: {verdict}</strong>'
             "<ul>" + "".join(f"<li>{_h(line)}</li>" for line in lines) + "</ul></div>",
             _table(["", ""], [[_h(k), f"<code>{_h(v)}</code>" if "root" in k.lower() else _h(v)]
                               for k, v in _facts(result)], "facts"),
             "<h2>Signers of the entries</h2>",
             _table(["Fingerprint", "Name", "Role", "Entries"],
                    [[f"<code>{_h(s.fingerprint)}</code>", _h(s.name or "(not on the roster)"), _h(s.role or ""),
                      str(s.entries)] for s in result.signers], "signers", frozenset({3})),
             "<h2>Withdrawals</h2>", f'<p class="note">Times: {_h(UNTRUSTED)}.</p>',
             '<div id="withdrawals">',
             _table(["Entry", "Time", "Signer", "Txid", "Destinations", "Total", "Chain"],
                    _withdrawal_rows(result.withdrawals), "withdrawals", frozenset({0, 5})),
             "</div>"]
    found = ceremonies(result)
    roots = _close_roots(result, found)
    for n, c in enumerate(found, 1):
        parts.append(f"<h2>Ceremony {n}</h2>")
        parts.append(_table(["", ""], [[_h(k), _h(v)] for k, v in _ceremony_lines(c, result.who, roots)], "ceremony"))
        if c.withdrawals:
            parts.append(_table(["Entry", "Time", "Signer", "Txid", "Destinations", "Total", "Chain"],
                                _withdrawal_rows(c.withdrawals), "ceremony-withdrawals", frozenset({0, 5})))
    parts.append("</body></html>\n")
    return "\n".join(parts)
