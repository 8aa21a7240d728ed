"""`coldsign watch import | list | show | receive | label | sync | balance | utxos` as a treasurer runs them.

The wallets are tests/walletkit.py's (alice's single-key accounts, the alice/bob/carol 2-of-3). Coins
come from the embedded regtest chain (`coldsign regtest fund`), so sync reads what libbitcoinkernel
accepted. Expected addresses are derived with embit's own descriptor class, not coldsign's.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app


def run(home, *args: str):
    return CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", *args])


def ok(home, *args: str) -> dict:
    result = run(home, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def embit_address(descriptor: str, change: int, index: int) -> str:
    from embit.descriptor import Descriptor
    from embit.networks import NETWORKS

    text = descriptor.split("#")[0]
    return Descriptor.from_string(text).derive(index, branch_index=change).address(NETWORKS["regtest"])


@pytest.fixture(scope="module")
def chain_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("coord")
    ok(home, "regtest", "init")
    return home


@pytest.fixture()
def home(chain_home, tmp_path):
    """A coordinator home with its own copy of a 101-block embedded chain."""
    import shutil

    copy = tmp_path / "coord"
    shutil.copytree(chain_home, copy)
    return copy


# ---------------------------------------------------------------- import

@pytest.mark.parametrize("kind", ["wpkh", "sh-wpkh", "tr", "wsh-sortedmulti"])
def test_import_a_descriptor_shows_the_first_address(home, kind):
    doc = ok(home, "watch", "import", "--name", "w", "--descriptor", W.descriptor(kind))
    assert doc["first_address"] == embit_address(W.descriptor(kind), 0, 0)
    assert doc["source"] == "descriptor" and doc["kind"] == kind and doc["gap_limit"] == 20
    holders = W.COSIGNERS if kind == "wsh-sortedmulti" else ("alice",)
    assert [k["fingerprint"] for k in doc["keys"]] == [W.seed(n).fingerprint_hex for n in holders]


def test_import_from_export_files(home, tmp_path):
    from pathlib import Path

    from embit.descriptor.checksum import add_checksum

    from coldsign.wallet import bsms, multisig_file

    multisig = W.wallet("wsh-sortedmulti")
    (tmp_path / "coldcard.txt").write_text(multisig_file.write(multisig, "vault"))
    (tmp_path / "vault.bsms").write_text(bsms.descriptor_record(multisig))
    exports = Path(__file__).parents[1] / "data" / "exports"  # as the applications write them: see its README.md
    files = [(tmp_path / "coldcard.txt", "wsh-sortedmulti"), (tmp_path / "vault.bsms", "wsh-sortedmulti"),
             # Sparrow's Output Descriptor export (io/Descriptor.java): /<0;1>/*, receive and change lines
             (exports / "sparrow-vault.txt", "wsh-sortedmulti"), (exports / "sparrow-alice-tr.txt", "tr"),
             # Specter Desktop's Account Map (wallet.py account_map): the receive descriptor /0/* only
             (exports / "specter-vault.json", "wsh-sortedmulti"),
             # Sparrow's Specter Desktop export (io/SpecterDesktop.java): the bare account key
             (exports / "sparrow-specter-alice.json", "wpkh")]
    for n, (path, kind) in enumerate(files):
        doc = ok(home, "watch", "import", "--name", f"v{n}", "--file", str(path))
        assert doc["first_address"] == embit_address(W.descriptor(kind), 0, 0), path.name
        assert embit_address(doc["descriptor"], 1, 0) == embit_address(W.descriptor(kind), 1, 0), path.name
    assert [w["name"] for w in ok(home, "watch", "list")["wallets"]] == [f"v{n}" for n in range(len(files))]

    lines = (exports / "sparrow-vault.txt").read_text().splitlines()
    lines[8] = add_checksum(W.descriptor("wpkh").split("#")[0].replace("/<0;1>/*", "/1/*"))  # another wallet's change
    (tmp_path / "mixed.txt").write_text("\n".join(lines) + "\n")
    mixed = run(home, "--json", "watch", "import", "--name", "x", "--file", str(tmp_path / "mixed.txt"))
    assert mixed.exit_code == 3
    error = json.loads(mixed.stdout)["error"]
    assert error["where"] == f"{tmp_path / 'mixed.txt'}: line 9"
    assert error["message"] == ("this change descriptor (/1/*) is not the same wallet as the /<0;1>/* descriptor "
                                "on line 2")

    words = W.write_mnemonic(tmp_path, "alice")
    coldcard_json = ok(home, "key", "export", "--mnemonic-file", str(words), "--format", "json")
    (tmp_path / "coldcard.json").write_text(json.dumps(coldcard_json["export"]))
    for script_type in ("wpkh", "sh-wpkh", "tr"):
        doc = ok(home, "watch", "import", "--name", f"cc-{script_type}", "--file", str(tmp_path / "coldcard.json"),
                 "--script-type", script_type)
        assert doc["source"] == "coldcard-json"
        assert doc["first_address"] == embit_address(W.descriptor(script_type), 0, 0)


def test_import_by_scanning_a_signers_ur_frames(home, tmp_path):
    words = W.write_mnemonic(tmp_path, "alice")
    frames = tmp_path / "frames"
    ok(home, "key", "export", "--mnemonic-file", str(words), "--format", "ur", "--script-type", "tr",
       "--frames-dir", str(frames))
    doc = ok(home, "watch", "import", "--name", "alice-tr", "--scan", "--images", str(frames / "frame-*.png"))
    assert doc["source"] == "ur" and doc["first_address"] == embit_address(W.descriptor("tr"), 0, 0)

    cosigner = tmp_path / "cosigner"
    ok(home, "key", "export", "--mnemonic-file", str(words), "--format", "ur", "--script-type", "wsh-multi",
       "--frames-dir", str(cosigner))
    refused = run(home, "watch", "import", "--name", "x", "--scan", "--images", str(cosigner / "frame-*.png"))
    assert refused.exit_code == 3 and "this crypto-output is one cosigner's key, not a wallet" in refused.output


def test_import_errors(home, tmp_path):
    ok(home, "watch", "import", "--name", "w", "--descriptor", W.descriptor("wpkh"))
    taken = run(home, "watch", "import", "--name", "w", "--descriptor", W.descriptor("tr"))
    assert taken.exit_code == 3 and "a wallet named 'w' exists already" in taken.output
    both = run(home, "watch", "import", "--name", "x", "--descriptor", W.descriptor("tr"), "--scan")
    assert both.exit_code == 2 and "give the wallet one way: --descriptor, --file or --scan" in both.output
    mainnet = W.descriptor("wpkh").split("#")[0].replace("/1h/0h]", "/0h/0h]")
    wrong = run(home, "watch", "import", "--name", "x", "--descriptor", mainnet.replace("tpub", "xpub"))
    assert wrong.exit_code == 3
    (tmp_path / "junk.json").write_text('{"wallet": 1}')
    junk = run(home, "watch", "import", "--name", "x", "--file", str(tmp_path / "junk.json"))
    assert junk.exit_code == 3 and "this JSON is not a wallet export coldsign knows" in junk.output
    assert [w["name"] for w in ok(home, "watch", "list")["wallets"]] == ["w"]


# ---------------------------------------------------------------- receive, sync, balance, utxos

def test_receive_sync_balance_utxos_and_labels(home):
    descriptor = W.descriptor("wsh-sortedmulti")
    ok(home, "watch", "import", "--name", "vault", "--descriptor", descriptor)
    first = ok(home, "watch", "receive", "vault", "--label", "from exchange")
    assert first == {"wallet": "vault", "index": 0, "address": embit_address(descriptor, 0, 0), "path": "0/0",
                     "label": "from exchange"}
    assert ok(home, "watch", "receive", "vault")["index"] == 0          # unused until a sync sees coins
    ok(home, "regtest", "fund", first["address"], "0.5")
    ok(home, "regtest", "fund", embit_address(descriptor, 0, 7), "0.25")   # inside the gap limit
    ok(home, "regtest", "fund", embit_address(descriptor, 1, 2), "0.125")  # change branch

    synced = ok(home, "watch", "sync", "vault")
    assert len(synced["new_coins"]) == 3 and synced["spent_coins"] == []
    assert synced["balance"] == {"confirmed_sat": 87_500_000, "unconfirmed_sat": 0, "total_sat": 87_500_000}
    assert synced["highest_used"] == {"receive": 7, "change": 2}
    assert ok(home, "watch", "sync", "vault")["new_coins"] == []         # nothing new the second time

    nxt = ok(home, "watch", "receive", "vault")
    assert nxt["index"] == 1 and nxt["address"] == embit_address(descriptor, 0, 1)
    balance = ok(home, "watch", "balance", "vault")
    assert balance["confirmed_sat"] == 87_500_000 and balance["tip_height"] == synced["tip"]["height"]

    coins = ok(home, "watch", "utxos", "vault")["coins"]
    assert sorted((c["change"], c["index"], c["amount_sat"]) for c in coins) == [
        (0, 0, 50_000_000), (0, 7, 25_000_000), (1, 2, 12_500_000)]
    by_path = {(c["change"], c["index"]): c for c in coins}
    assert by_path[(0, 0)]["label"] == "from exchange"        # the address's label shows on its coin
    ok(home, "watch", "label", "vault", by_path[(0, 7)]["outpoint"], "cold top-up")
    labelled = {c["outpoint"]: c["label"] for c in ok(home, "watch", "utxos", "vault")["coins"]}
    assert labelled[by_path[(0, 7)]["outpoint"]] == "cold top-up"

    shown = ok(home, "watch", "show", "vault")
    assert shown["balance"]["total_sat"] == 87_500_000 and shown["coins"] == 3
    assert shown["next_receive"] == {"index": 1, "address": embit_address(descriptor, 0, 1)}


def test_receive_qr_scans_back_to_the_address(home):
    import numpy as np
    import re

    from coldsign.qr.decoders import make_decoder
    from coldsign.qr.render import modules_from_half_blocks, to_array

    ok(home, "watch", "import", "--name", "w", "--descriptor", W.descriptor("wpkh"))
    result = run(home, "watch", "receive", "w", "--qr")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line and set(line) <= set(" ▀▄█")]
    width = max(len(line) for line in lines)
    modules = modules_from_half_blocks([line.ljust(width) for line in lines])
    image = np.pad(to_array(modules, scale=6), 24, constant_values=255)
    assert make_decoder().decode(image) == [embit_address(W.descriptor("wpkh"), 0, 0).upper()]
    assert re.search(r"receive #0: bcrt1", result.stdout)


def test_sync_needs_a_source_off_regtest_and_an_unreachable_one_changes_nothing(home, tmp_path):
    test_home = tmp_path / "testnet"
    descriptor = W.descriptor("wpkh")
    imported = CliRunner().invoke(app, ["--home", str(test_home), "--network", "test", "watch", "import", "--name",
                                        "w", "--descriptor", descriptor])
    assert imported.exit_code == 0, imported.output
    no_source = CliRunner().invoke(app, ["--home", str(test_home), "watch", "sync", "w"], env={"COLDSIGN_SOURCE": ""})
    assert no_source.exit_code == 2 and "no chain source for --network test" in no_source.output

    ok(home, "watch", "import", "--name", "w", "--descriptor", descriptor)
    down = run(home, "--json", "watch", "sync", "w", "--source", "esplora://127.0.0.1:9/api?timeout=1&retries=0")
    assert down.exit_code == 7, down.output
    assert ok(home, "watch", "show", "w")["tip_height"] is None and ok(home, "watch", "utxos", "w")["coins"] == []
