"""Audit numbers: verifying ceremony logs of 10,000 and 100,000 entries (issue 7's target: 100,000
in ≤ 5 s on this 2-core machine).

The log is built in memory (make_entry in a loop, no fsync'd appends) from ceremonies of nine
entries — opened, policy installed, PSBT received, review shown, policy decision, approvals
checked, signatures produced (two outputs), exported, closed — signed by alice's identity key
(walletkit seed). Measured, for each size:

- `verify_entries`: each line parsed strictly (canonical form, payload schema), its Ed25519
  signature, the roster, then the seq/prev chain;
- `audit_export` of the whole export document: the above plus the Merkle root against the signed
  checkpoint, the withdrawals listed and the signers counted (what `coldsign audit verify` runs,
  file reading and JSON parsing of the document not included);
- `audit_export_bytes` of the file's bytes: everything `coldsign audit verify` does with an export
  file once it is read — the document around the entries parsed and its spelling checked, the
  entries decoded from the file's bytes by the worker processes that check them (a range of
  bytes each, its spelling checked there), then what `audit_export` does with the entries.

Run: .venv/bin/python benchmarks/audit.py [SIZES...]   (prints numbers; no pass/fail)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


REPEAT = 3
CORES = os.cpu_count() or 1


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (the verification workers):
    other programs on the machine slow the wall-clock numbers down, not this one."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ceremony(key, n: int):
    from coldsign.ceremony import events

    digest = f"{n % 256:02x}" * 32
    return [
        (events.CEREMONY_OPENED, events.ceremony_opened([key.fingerprint, "Bob Ruiz"], "0.1.0", "aa" * 32, "laptop 7")),
        (events.POLICY_INSTALLED, events.policy_installed("bb" * 32, 3, "treasury")),
        (events.PSBT_RECEIVED, events.psbt_received(digest, "qr", 812)),
        (events.REVIEW_SHOWN, events.review_shown(digest)),
        (events.POLICY_DECISION, events.policy_decision(True, [("max-fee", True, "fee 2,000 sat within 20,000"),
                                                               ("velocity", True, "0.5 BTC of 5 BTC today")])),
        (events.APPROVALS_CHECKED, events.approvals_checked(True, 2, [key.fingerprint, "733a-57b7-c5ab-3f73"])),
        (events.SIGNATURES_PRODUCED, events.signatures_produced(digest, "cc" * 32, [0, 1], "ef" * 32, [
            ("bcrt1qg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyay3npn", 50_000_000),
            ("bcrt1q2424242424242424242424242424242406xw5p", 49_000_000)])),
        (events.EXPORTED, events.exported("bbqr", 4)),
        (events.CEREMONY_CLOSED, events.ceremony_closed("signed")),
    ]


def build(key, count: int) -> list[bytes]:
    from coldsign.ceremony.log import ZERO_HASH, line_hash, make_entry

    lines, prev, start, n = [], ZERO_HASH, datetime(2026, 1, 1, tzinfo=timezone.utc), 0
    while len(lines) < count:
        for event, payload in ceremony(key, n):
            if len(lines) == count:
                break
            line = make_entry(len(lines), prev, event, payload, key, start + timedelta(seconds=len(lines)))
            lines.append(line)
            prev = line_hash(line)
        n += 1
    return lines


def main(sizes: list[int]) -> None:
    import walletkit

    from coldsign.ceremony import merkle
    from coldsign.ceremony.audit import audit_export, audit_export_bytes, export_bytes
    from coldsign.ceremony.checkpoint import build_export, origin_for, sign_checkpoint
    from coldsign.ceremony.log import verify_entries
    from coldsign.keys.identity import IdentityKey
    from coldsign.keys.roster import Custodian, Roster

    key = IdentityKey.from_seed(walletkit.seed("alice"))
    roster = Roster((Custodian("Alice Ng", "custodian", key.public_key),))
    for count in sizes:
        started = time.perf_counter()
        lines = build(key, count)
        cp = sign_checkpoint(origin_for(key.fingerprint), count, merkle.tree_hash(lines), key)
        doc = json.loads(json.dumps(build_export(lines, 0, cp)))
        print(f"{count:,} entries ({sum(map(len, lines)) / count:.0f} bytes each): built in "
              f"{time.perf_counter() - started:.1f} s")

        data = export_bytes(doc)
        runs = {
            "verify_entries (parse, canonical form, roster, Ed25519, seq/prev chain)":
                lambda: not verify_entries(lines, [key.public_key]),
            "audit_export (the above + checkpoint, Merkle root, withdrawals, signers)":
                lambda: audit_export(doc, roster).ok,
            f"audit_export_bytes (the above + the {len(data) / 1e6:.0f} MB file decoded, its spelling checked)":
                lambda: audit_export_bytes(data, roster).ok,
        }
        for name, run in runs.items():
            best, best_cpu = float("inf"), 0.0
            for _ in range(REPEAT):
                started, cpu = time.perf_counter(), cpu_seconds()
                assert run(), name
                took, cpu = time.perf_counter() - started, cpu_seconds() - cpu
                if took < best:
                    best, best_cpu = took, cpu
            print(f"  {name}: {best:.2f} s ({count / best:,.0f} entries/s); CPU {best_cpu:.2f} s in all processes "
                  f"(≥ {best_cpu / CORES:.2f} s on {CORES} idle cores)")
        print(f"  (best of {REPEAT}; load average {os.getloadavg()[0]:.2f}: other programs slow the wall-clock "
              "numbers, not the CPU ones)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
