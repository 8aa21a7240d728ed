"""A 2-of-3 withdrawal on the embedded regtest chain, played through the coldsign commands.

Roles, each in its own home folder under --workdir (default ./rehearsal, wiped first):
  coordinator  holds the chain and the watch-only wallet
  alice, bob, carol  cosigners with fixed test seeds (entropy 0x01.., 0x02.., 0x03..; never real)
Steps: derive each cosigner's account key; register the 2-of-3 wsh(sortedmulti) wallet on the
coordinator and on each signer (with its seed); mine the chain; fund two receive addresses;
build the unsigned withdrawal (the watch half's `watch send` will do this step); alice and bob
review and sign; the coordinator finalizes (libbitcoinkernel checks every input) and mines it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLDSIGN = str(ROOT / ".venv" / "bin" / "coldsign")
H = 0x80000000
ACCOUNT = (48 | H, 1 | H, 0 | H, 2 | H)   # BIP-48 P2WSH multisig account 0 on test networks


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def coldsign(*args: str, show: bool = False) -> dict:
    """Run one coldsign command (printed as a user would type it) and return its JSON."""
    print("$ coldsign " + " ".join(shlex.quote(a) for a in args), flush=True)
    if show:  # the human view, as the custodian sees it
        subprocess.run([COLDSIGN, *args], check=True)
    done = subprocess.run([COLDSIGN, *args, "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr + done.stdout)
        raise SystemExit(f"rehearsal failed at: coldsign {' '.join(args)} (exit {done.returncode})")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "rehearsal")
    args = parser.parse_args()
    work: Path = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()

    from embit import bip39

    from coldsign.keys.export import account_key_expression
    from coldsign.keys.secret import Secret
    from coldsign.keys.seed import SeedKey
    from coldsign.network import Network

    say("Key ceremony: three cosigners, fixed test seeds")
    words = {}
    keys = []
    for n, name in enumerate(("alice", "bob", "carol"), 1):
        words[name] = work / f"{name}-words.txt"
        words[name].write_text(bip39.mnemonic_from_bytes(bytes([n]) * 16) + "\n")
        words[name].chmod(0o600)
        seed = SeedKey.from_mnemonic(Secret(words[name].read_text()))
        keys.append(account_key_expression(seed, ACCOUNT, Network.REGTEST))
        print(f"{name}: master fingerprint {seed.fingerprint.hex()}, account key {keys[-1][:40]}…")
    descriptor = f"wsh(sortedmulti(2,{','.join(keys)}))"

    home = {role: str(work / role) for role in ("coordinator", "alice", "bob", "carol")}
    net = ("--network", "regtest")
    say("Register the 2-of-3 wallet on the coordinator (watch-only) and on each signer (with its seed)")
    coldsign("--home", home["coordinator"], *net, "wallet", "register", "--name", "vault", "--descriptor", descriptor)
    for name in ("alice", "bob", "carol"):
        coldsign("--home", home[name], *net, "wallet", "register", "--name", "vault",
                 "--descriptor", descriptor, "--mnemonic-file", str(words[name]))
    first = coldsign("--home", home["coordinator"], *net, "wallet", "address", "vault", "0")["address"]
    check = coldsign("--home", home["alice"], *net, "wallet", "address", "vault", "0")["address"]
    assert first == check, "coordinator and signer disagree on the first address"
    print(f"receive address 0 on the coordinator and on alice's signer: {first}")

    say("Fund the wallet on the embedded chain (libbitcoinkernel validates every block)")
    coldsign("--home", home["coordinator"], *net, "regtest", "init")
    for index, amount in (("0", "0.6"), ("1", "0.5")):
        address = coldsign("--home", home["coordinator"], *net, "wallet", "address", "vault", index)["address"]
        coldsign("--home", home["coordinator"], *net, "regtest", "fund", address, amount)

    say("Build the unsigned withdrawal: 0.7 BTC to an external address, change to 1/0")
    unsigned = work / "withdrawal.psbt"
    destination = "bcrt1qqqqsyqcyq5rqwzqfpg9scrgwpugpzysnard0ew"
    _build(home["coordinator"], unsigned, destination, 70_000_000)

    say("Alice reviews and signs; Bob reviews and signs (separate machines, separate seeds)")
    signed = []
    for name in ("alice", "bob"):
        out = work / f"signed-{name}.psbt"
        show = name == "alice"
        if show:
            coldsign("--home", home[name], *net, "psbt", "inspect", str(unsigned), "--wallet", "vault", show=True)
        report = coldsign("--home", home[name], *net, "psbt", "sign", str(unsigned), "--wallet", "vault",
                          "--mnemonic-file", str(words[name]), "--out", str(out))
        print(f"{name} signed {report['signed_inputs']} input(s); sha256 {report['sha256']}")
        signed.append(str(out))

    say("Coordinator: combine, finalize (every input through libbitcoinkernel), mine")
    tx_file = work / "withdrawal.tx"
    final = coldsign("psbt", "finalize", *signed, "--out", str(tx_file))
    mined = coldsign("--home", home["coordinator"], *net, "psbt", "broadcast", str(tx_file), "--regtest")
    say("Done")
    print(f"txid   {final['txid']}")
    print(f"height {mined['height']}  (block {mined['block_hash']})")
    print(f"time   {time.monotonic() - started:.1f} s")
    return 0


def _build(coordinator_home: str, out: Path, address: str, amount: int) -> None:
    from coldsign.chain.address import regtest_address_script
    from coldsign.chain.regtest import RegtestChain
    from coldsign.psbt.create import Coin, create_psbt
    from coldsign.wallet import registry

    wallet = registry.load(Path(coordinator_home), "vault").descriptor
    scripts = {wallet.script_pubkey(0, i): i for i in range(2)}
    with RegtestChain.open(Path(coordinator_home) / "regtest") as chain:
        coins = [Coin(u.txid, u.vout, u.amount_sat, u.script_pubkey, 0, scripts[u.script_pubkey],
                      previous_tx=chain.get_transaction(u.txid)) for u in chain.utxos(scripts)]
    psbt = create_psbt(wallet, coins, [(regtest_address_script(address), amount)], fee_rate=5, change_index=0)
    out.write_bytes(psbt.serialize())
    print(f"unsigned PSBT {psbt.txid()} with {len(coins)} inputs written to {out}")


if __name__ == "__main__":
    raise SystemExit(main())
