"""`coldsign ceremony rehearse`: the whole withdrawal ceremony on the embedded regtest chain.

Thin: options in, `coldsign.cli.rehearsal.rehearse` does the work (the steps of
`coldsign.cli.rehearsal_steps`, each a real coldsign command in its role's home folder; the faults of
`coldsign.cli.rehearsal_attacks`), this module narrates each step on stderr with Rich and prints the
summary (one JSON document with --json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from coldsign.cli.app import JsonFlag, emit, settings_of
from coldsign.errors import ExitStatus

app = typer.Typer(no_args_is_help=True, help="Ceremonies: rehearse the whole 2-of-3 withdrawal on the embedded "
                  "regtest chain.\n\nExample: coldsign ceremony rehearse --workdir /tmp/rehearsal --json")

STAGES = {1: "key ceremony", 2: "funding", 3: "withdrawal", 4: "bundle across the air gap",
          5: "signing", 6: "collect, broadcast, confirm", 7: "audit"}


def _narrator(console):
    """A callback printing one line per finished step: stage, role, what happened, what crossed, time."""
    from rich.text import Text

    shown = set()

    def narrate(event) -> None:
        if event.stage not in shown:
            shown.add(event.stage)
            console.print(Text(f"\n{event.stage}. {STAGES.get(event.stage, '')}", style="bold"))
        style = "bold red" if event.role == "attacker" else "cyan"
        line = Text.assemble(("  ", ""), (f"{event.role:<12}", style), f" {event.title}")
        if event.crossed:
            line.append(f"  ⇄ {event.crossed}", style="magenta")
        if event.frames:
            line.append(f" ({event.frames} frames)", style="magenta")
        line.append(f"  {event.seconds:.1f} s", style="dim")
        console.print(line)

    return narrate


def _render(console, doc: dict) -> None:
    from rich.text import Text

    if "attack" in doc:
        if doc["caught"]:
            console.print(Text.assemble(("CAUGHT ", "bold green"), f"{doc['attack']}: by [{doc['by']}] at "
                                        f"{doc['where']} (exit {doc['exit']}): {doc['message']}"))
        else:
            console.print(Text.assemble(("NOT CAUGHT ", "bold red"), f"{doc['attack']}: {doc['message']}"))
        return
    console.print(Text.assemble(("\ntxid ", "bold"), (str(doc["txid"]), "cyan"),
                                f"  confirmed at height {doc['confirmed_height']}"))
    console.print(f"signers {', '.join(doc['signers'])}; QR frames read: {doc['frames_out']} out to the signers, "
                  f"{doc['frames_back']} back to the coordinator")
    verdict = Text("audit_ok: true", style="bold green") if doc["audit_ok"] else \
        Text("audit_ok: false", style="bold red")
    console.print(verdict)
    console.print(f"{doc['seconds']} s; keystores: {doc['kdf']}; every file is in {doc['workdir']}")


@app.command()
def rehearse(
    ctx: typer.Context,
    workdir: Annotated[Path, typer.Option("--workdir", help="folder for every role's home folder (wiped first; "
                                          "refused if it holds something else)")] = Path("rehearsal"),
    random_seeds: Annotated[bool, typer.Option("--random", help="fresh seeds from the operating system "
                                               "instead of the fixed test entropy")] = False,
    attack: Annotated[Optional[str], typer.Option("--attack", help="inject one fault and show where it is "
                                                  "caught: destination-swapped, foreign-change, fee-inflated, "
                                                  "request-replayed, frame-mixed or log-edited")] = None,
    fast_kdf: Annotated[bool, typer.Option("--fast-kdf", help="rehearsal only: keystores with Argon2id's "
                                           "INTERACTIVE limits instead of the default (about twice as fast); "
                                           "the summary says so")] = False,
    json_flag: JsonFlag = False,
) -> None:
    """Rehearse a 2-of-3 cold-storage withdrawal end to end on the embedded regtest chain.

    Roles in their own home folders under --workdir: three custodians' signers (alice, bob, carol),
    the coordinator, the auditor. Key ceremony (keystores, identity keys, roster, the wallet on each
    signer and the coordinator, the first policy, logs opened); funding; withdrawal, request and
    approvals; the bundle crosses as photographed QR frames; two signers sign and answer as QR; the
    coordinator collects, finalizes, broadcasts, mines and syncs; the auditor verifies the logs and
    writes HTML reports. Each step is narrated on stderr.

    --json prints {"txid", "confirmed_height", "signers", "frames_out", "frames_back", "audit_ok", ...}.
    With --attack NAME: {"attack", "caught", "by", "where", ...}; exit 0 only when the fault was
    caught by the expected check, else exit 5.

    Example: coldsign ceremony rehearse --workdir /tmp/rehearsal --json

    Example: coldsign ceremony rehearse --workdir /tmp/rehearsal --attack destination-swapped --fast-kdf
    """
    from rich.console import Console

    from coldsign.cli.rehearsal import Options, rehearse as play
    from coldsign.cli.rehearsal_attacks import attack_named

    settings = settings_of(ctx, json_flag)
    if attack is not None:
        attack_named(attack)  # an unknown name is a usage error before anything is wiped
    console = Console(stderr=True, highlight=False, markup=False)
    doc = play(Options(workdir=workdir, random=random_seeds, fast_kdf=fast_kdf, attack=attack),
               narrate=_narrator(console))
    emit(settings, doc, lambda: _render(Console(highlight=False, markup=False), doc))
    if attack is not None and not doc["caught"]:
        raise typer.Exit(int(ExitStatus.VERIFICATION_FAILED))
