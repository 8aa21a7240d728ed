"""Run `coldsign ceremony rehearse` (workdir ./rehearsal) and end with the txid and the audit verdict.

The ceremony narrates each step on stderr as it happens; its JSON summary comes back on stdout and
this script prints the two lines a rehearsal is judged by. Extra arguments go to the command
(--random, --attack NAME, --fast-kdf, --workdir DIR). The exit code is the command's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    extra = list(argv)
    if "--workdir" not in extra:
        extra += ["--workdir", str(ROOT / "rehearsal")]
    command = [str(ROOT / ".venv" / "bin" / "coldsign"), "ceremony", "rehearse", *extra, "--json"]
    print("$ coldsign " + " ".join(command[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.stdout.write(done.stdout)
        return done.returncode or 1
    if "error" in doc:
        print(f"rehearsal failed: {doc['error'].get('message')}")
    elif "attack" in doc:
        print(f"attack {doc['attack']}: " + (f"caught by [{doc['by']}] at {doc['where']}" if doc["caught"]
                                             else "NOT caught"))
    else:
        print(f"txid {doc['txid']} (confirmed at height {doc['confirmed_height']})")
        print(f"audit_ok: {str(doc['audit_ok']).lower()}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
