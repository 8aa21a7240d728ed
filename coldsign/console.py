"""Rich rendering of result objects. The only UI code; nothing here decides anything."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# NOTE: markup off: descriptors print "[fingerprint/path]" origins, which Rich would otherwise take
# for style tags and silently drop — the custodian must see every character. Styles go through Text.
_out = Console(highlight=False, markup=False)


def btc(sat: int | None) -> str:
    if sat is None:
        return "?"
    sign = "-" if sat < 0 else ""
    whole, frac = divmod(abs(sat), 100_000_000)
    return f"{sign}{whole}.{frac:08d} BTC"


def render_review(review, console: Console = _out) -> None:
    wallet = review.wallet_name or "no wallet given"
    console.print(Text.assemble(("Transaction ", "bold"), (review.txid, "cyan"),
                                f"   PSBT v{review.psbt_version}   network {review.network.value}   wallet {wallet}"))
    inputs = Table(title="Spends", title_justify="left", show_lines=False)
    for col in ("#", "coin (txid:vout)", "amount", "type", "amount proven", "ours", "signatures"):
        inputs.add_column(col, overflow="fold")  # fold, never truncate: every character is checked
    for item in review.inputs:
        inputs.add_row(str(item.index), item.prevout, btc(item.amount_sat), item.script_type,
                       "yes" if item.amount_verified else Text("NO", style="bold red"),
                       f"yes {item.path[0]}/{item.path[1]}" if item.path else "no",
                       f"{item.signatures}/{item.required}")
    console.print(inputs)
    outputs = Table(title="Pays", title_justify="left")
    for col in ("#", "address", "amount", "what"):
        outputs.add_column(col, overflow="fold")
    for out in review.outputs:
        what = Text(f"change {out.path[0]}/{out.path[1]}", style="green") if out.change else \
            Text("PAYMENT", style="bold yellow")
        outputs.add_row(str(out.index), out.address or out.script_pubkey.hex(), btc(out.amount_sat), what)
    console.print(outputs)
    rate = f"{review.fee_rate} sat/vB" if review.fee_rate is not None else "?"
    approx = "~" if review.vsize_estimated else ""
    console.print(f"Sends {btc(review.sent_sat)} to others, keeps {btc(review.change_sat)} as change, "
                  f"fee {btc(review.fee_sat)} ({rate}, {approx}{review.vsize} vB)")
    for f in review.findings:
        style = "bold red" if f.refuse else "yellow"
        label = "REFUSE" if f.refuse else "warning"
        console.print(Text.assemble((f"{label} [{f.code}] ", style), f.message))
    if not review.refusals:
        console.print(Text("No rule refuses this transaction.", style="green"))


def render_sign_report(report, out: str, sha: str, seed: dict, console: Console = _out) -> None:
    console.print(Text.assemble(("Signed ", "bold green"), f"{len(report.signed)} input(s): "
                                f"{', '.join(map(str, report.signed))}"))
    console.print(seed_line(seed))
    for i, reason in report.skipped:
        console.print(f"  skipped input {i}: {reason}")
    if report.consensus_checked:
        console.print(f"  libbitcoinkernel accepted the completed input(s) {report.consensus_checked}")
    if report.signature_checked:
        console.print(f"  signature checked against digest and key on input(s) {report.signature_checked} "
                      "(finalize runs them through libbitcoinkernel)")
    console.print(f"Wrote {out}  sha256 {sha}")


def fingerprint_text(fingerprint: str, without_passphrase: str | None = None) -> str:
    """A seed's master fingerprint as custodians compare it: with a BIP-39 passphrase, the fingerprint
    of the bare words too, so they recognise both the wallet and the words they hold."""
    if without_passphrase is None:
        return fingerprint
    return f"{fingerprint} (with the BIP-39 passphrase; {without_passphrase} without it)"


def seed_line(fingerprints: dict) -> Text:
    return Text("  with the seed of master fingerprint " + fingerprint_text(
        fingerprints["fingerprint"], fingerprints.get("fingerprint_without_passphrase")))


def render_wallet(doc: dict, *, title: str, console: Console = _out) -> None:
    """A wallet as custodians compare it with each other (BIP-129 asks every signer to show the
    first address, M, N and its own key position): header, policy, keys, first address, seed key."""
    console.print(Text.assemble((title, "bold"), f"  {doc['name']}  ({doc['network']})"))
    count = len(doc["keys"])
    if doc.get("threshold") is not None:
        console.print(f"policy:     {doc['policy']} ({doc['kind']}): M = {doc['threshold']} signatures "
                      f"of N = {count} keys")
    else:
        console.print(f"policy:     {doc['policy']} ({doc['kind']})")
    console.print(f"created:    {doc['created']}")
    if doc.get("source") and doc["source"] != "descriptor":
        origin = {"bsms": "BSMS (BIP-129) descriptor record", "coldcard": "Coldcard/Sparrow multisig file"}
        console.print(f"from:       {origin.get(doc['source'], doc['source'])}"
                      + (f" named {doc['file_name']!r}" if doc.get("file_name") else ""))
    if doc.get("bsms"):
        console.print(f"paths:      {doc['bsms']['path_restrictions']}; the record's first address matches")
    console.print(f"descriptor: {doc['descriptor']}", soft_wrap=True)
    table = Table("#", "fingerprint", "path")
    table.add_column("xpub", overflow="fold")
    for i, key in enumerate(doc["keys"], 1):
        table.add_row(str(i), key["fingerprint"], key["path"], key["xpub"])
    console.print(table)
    if doc.get("first_address"):
        console.print(Text.assemble("first receive address: ", (doc["first_address"], "bold")))
    if doc.get("seed_key"):
        console.print(Text.assemble("this seed holds ", (f"key {doc['seed_key']['position']} of {count}", "bold"),
                                    f" (fingerprint {doc['seed_key']['fingerprint']}, "
                                    f"path {doc['seed_key']['path']})"))


def render_wallet_list(doc: dict, folder, console: Console = _out) -> None:
    if not doc["wallets"]:
        console.print(f"no wallets registered in {folder}")
        return
    table = Table("name", "network", "policy", "kind", "fingerprints", "created")
    for item in doc["wallets"]:
        table.add_row(item["name"], item["network"], item["policy"], item["kind"],
                      " ".join(item["fingerprints"]), item["created"])
    console.print(table)


def render_address(doc: dict, policy: str, console: Console = _out) -> None:
    console.print(f"{doc['wallet']} ({doc['network']}, {policy}) "
                  f"{'change' if doc['change'] else 'receive'} #{doc['index']}")
    console.print(Text(doc["address"], style="bold"))
    table = Table("fingerprint", "path")
    table.add_column("pubkey", overflow="fold")
    for key in doc["keys"]:
        table.add_row(key["fingerprint"], key["path"], key["pubkey"])
    console.print(table)


class ScanProgress:
    """Progress on stderr: a Rich bar (percent, frames seen/useful, elapsed) on a terminal, else a
    plain line at each tenth of the way and when the format is recognised."""

    STEP = 0.1

    def __init__(self, what: str, *, stream: Any = None):
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: Any = None
        self._task: Any = None
        self._started = time.monotonic()
        self._last_step = -1
        self._format: str | None = None

    def __enter__(self) -> "ScanProgress":
        if self.tty:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("frames {task.fields[seen]} · useful {task.fields[useful]}"),
                                 TimeElapsedColumn(), console=Console(file=self.stream), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(f"scanning {self.what}", total=1.0, seen=0, useful=0)
        return self

    def update(self, progress: Any, frames_seen: int) -> None:
        fraction = progress.fraction if progress is not None else 0.0
        useful = progress.frames_useful if progress is not None else 0
        fmt = progress.format if progress is not None else None
        if self._bar is not None:
            label = f"{fmt} from {self.what}" if fmt else f"scanning {self.what}"
            self._bar.update(self._task, completed=fraction, seen=frames_seen, useful=useful, description=label)
            return
        step = int(fraction / self.STEP + 1e-9)
        if fmt != self._format or step > self._last_step:
            self._format, self._last_step = fmt, step
            if fmt is not None:
                self._line(f"{fmt} {fraction:.0%}: {frames_seen} frame(s) seen, {useful} useful")

    def done(self, receipt: Any) -> None:
        if self._bar is None and self._last_step < int(1 / self.STEP):
            self._line(f"{receipt.message.format} 100%: {receipt.frames_seen} frame(s) seen, "
                       f"{receipt.frames_useful} useful")

    def _line(self, text: str) -> None:
        self.stream.write(f"qr: {text} ({time.monotonic() - self._started:.1f} s)\n")
        self.stream.flush()

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
