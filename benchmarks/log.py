"""Ceremony-log numbers: append rate (lock + write + fsync each), Merkle root of 100,000 lines,
verification of 100,000 signed entries (the issue's target: ≤ 5 s on 2 cores), export build.

Run: .venv/bin/python benchmarks/log.py [ENTRIES]   (prints numbers; no pass/fail)
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(count: int = 100_000) -> None:
    import walletkit

    from coldsign.ceremony import checkpoint, events, merkle
    from coldsign.ceremony.log import CeremonyLog, line_hash, make_entry, verify_entries, ZERO_HASH
    from coldsign.keys.identity import IdentityKey

    key = IdentityKey.from_seed(walletkit.seed("alice"))
    payload = events.signatures_produced("ab" * 32, "cd" * 32, [0, 1], "ef" * 32,
                                         [("bcrt1qexampleaddress0000000000000000000", 150_000)])
    with tempfile.TemporaryDirectory() as home:
        log = CeremonyLog(home)
        start = time.perf_counter()
        for _ in range(200):
            log.append(events.REFUSAL, events.refusal("fee", "fee above policy"), key)
        took = time.perf_counter() - start
        print(f"append (flock + O_APPEND write + fsync): {200 / took:,.0f} entries/s")

    start = time.perf_counter()
    lines, prev, now = [], ZERO_HASH, datetime.now(timezone.utc)
    for seq in range(count):
        line = make_entry(seq, prev, events.SIGNATURES_PRODUCED, payload, key, now)
        lines.append(line)
        prev = line_hash(line)
    print(f"build {count:,} signed entries in memory: {time.perf_counter() - start:.2f} s")

    start = time.perf_counter()
    root = merkle.tree_hash(lines)
    print(f"Merkle root of {count:,} lines: {time.perf_counter() - start:.3f} s")

    start = time.perf_counter()
    problems = verify_entries(lines, [key.public_key])
    took = time.perf_counter() - start
    assert not problems, problems[:3]
    print(f"verify {count:,} entries (parse, canonical form, chain, roster, Ed25519 on 2 threads): "
          f"{took:.2f} s ({count / took:,.0f}/s)")

    cp = checkpoint.sign_checkpoint(checkpoint.origin_for(key.fingerprint), count, root, key)
    start = time.perf_counter()
    doc = checkpoint.build_export(lines, count // 2, cp)
    print(f"export of the second half (consistency proof included): {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    check = checkpoint.verify_export(doc, [key.public_key], previous=None)
    assert check.ok, check.problems[:3]
    print(f"verify that export ({count - count // 2:,} entries): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
