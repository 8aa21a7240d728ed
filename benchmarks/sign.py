"""Signing cost per input as PSBTs grow: coldsign against embit's own `PSBT.sign_with`.

Each PSBT spends N coins of one wallet (P2WPKH, or 2-of-3 P2WSH sortedmulti), each coin the
first output of its own previous transaction (carried in full, as the signer requires), to one
external output and change. coldsign's time is review + sign (the libbitcoinkernel check is
timed separately); embit's is `sign_with(root)` on the same bytes, parsed beforehand.
Prints a table; asserts nothing. Run: .venv/bin/python benchmarks/sign.py [--sizes 10,100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import walletkit as W  # noqa: E402

from coldsign.network import Network  # noqa: E402
from coldsign.psbt.create import create_psbt  # noqa: E402


def build(kind: str, n: int):
    wallet = W.wallet(kind)
    coins = [W.coin(wallet, 0, i) for i in range(n)]
    return wallet, create_psbt(wallet, coins, [(W.EXTERNAL_SCRIPT, 50_000 * n)], fee_rate=2, change_index=n)


def time_coldsign(kind: str, n: int, psbt_bytes: bytes) -> tuple[float, float]:
    from coldsign.psbt.codec import Psbt
    from coldsign.psbt.review import review
    from coldsign.psbt.sign import check_signatures, sign

    wallet = W.wallet(kind)
    seed = W.seed("alice")
    psbt = Psbt.parse(psbt_bytes)
    start = time.perf_counter()
    result = review(psbt, Network.REGTEST, wallet, wallet_name="bench")
    report = sign(psbt, result, wallet, seed)
    signed = time.perf_counter() - start
    assert len(report.signed) == n, report.skipped[:3]
    start = time.perf_counter()
    check_signatures(report, result)
    checked = time.perf_counter() - start
    return signed, checked


def time_embit(psbt_bytes: bytes) -> float:
    from embit.psbt import PSBT

    psbt = PSBT.parse(psbt_bytes)
    root = W.seed("alice").root.reveal()
    start = time.perf_counter()
    count = psbt.sign_with(root)
    elapsed = time.perf_counter() - start
    assert count > 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500,2000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest is shown")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("check = libbitcoinkernel on the completed input (wpkh); signature against an independently")
    print("        computed BIP-143 digest (2-of-3, which one signer cannot complete)")
    print(f"{'wallet':<18}{'inputs':>7}{'coldsign ms/in':>16}{'check ms/in':>13}{'embit ms/in':>13}")
    for kind in ("wpkh", "wsh-sortedmulti"):
        per_input = {}
        for n in sizes:
            _wallet, psbt = build(kind, n)
            raw = psbt.serialize()
            signed, checked = min((time_coldsign(kind, n, raw) for _ in range(args.repeat)), key=lambda t: t[0])
            embit = time_embit(raw)
            per_input[n] = signed / n
            print(f"{kind:<18}{n:>7}{signed / n * 1e3:>16.3f}{checked / n * 1e3:>13.3f}{embit / n * 1e3:>13.3f}",
                  flush=True)
        if 100 in per_input and max(sizes) > 100:
            print(f"{kind:<18} flatness: {max(sizes)}-input cost per input / 100-input cost = "
                  f"{per_input[max(sizes)] / per_input[100]:.2f}")


if __name__ == "__main__":
    main()
