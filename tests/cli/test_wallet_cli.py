"""`coldsign wallet register | list | show | address` as users run them, exit codes and JSON.

Fixture: the 2-of-3 regtest `wsh(sortedmulti)` vault of custodians A "abandon ... about",
B "legal winner ... yellow", C "letter advice ... above" (BIP-48 accounts m/48h/1h/0h/2h);
custodian B's mnemonic sits in a file as the signer would read it. Seed D "zoo ... wrong" holds
none of the vault's keys.
"""

import json

import pytest
from embit import bip32, bip39
from embit.descriptor import Descriptor
from embit.networks import NETWORKS
from typer.testing import CliRunner

from coldsign.cli.main import app

ABANDON = "abandon " * 11 + "about"
LEGAL = "legal winner thank year wave sausage worth useful legal winner thank yellow"
LETTER = "letter advice cage absurd amount doctor acoustic avoid letter advice cage above"
ZOO = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong"


def key_text(mnemonic: str, path: str = "m/48h/1h/0h/2h", branches: str = "/<0;1>/*") -> str:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic))
    xpub = root.derive(path).to_public().to_base58(NETWORKS["test"]["xpub"])
    return f"[{root.my_fingerprint.hex()}{path[1:]}]{xpub}{branches}"


def vault(branches: str = "/<0;1>/*") -> str:
    return f"wsh(sortedmulti(2,{','.join(key_text(m, branches=branches) for m in (ABANDON, LEGAL, LETTER))}))"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def run(runner, home, *args, network="regtest"):
    base = ["--home", str(home)] + (["--network", network] if network else [])
    return runner.invoke(app, base + list(args))


def one_json(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_register_with_seed_then_list_show_address(runner, home, tmp_path):
    words = tmp_path / "b.txt"
    words.write_text(LEGAL + "\n")
    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault(),
                 "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 0, result.output
    doc = one_json(result)
    assert doc["registered"] is True and doc["policy"] == "2 of 3" and doc["kind"] == "wsh-sortedmulti"
    assert doc["seed_key"]["position"] == 2 and doc["seed_key"]["path"] == "m/48h/1h/0h/2h"
    assert doc["network"] == "regtest" and doc["descriptor"].split("#")[1]
    reference = Descriptor.from_string(vault())
    assert doc["first_address"] == reference.derive(0, branch_index=0).address(NETWORKS["regtest"])
    assert LEGAL not in result.output
    assert (home / "wallets" / "vault.json").is_file()

    listed = one_json(run(runner, home, "wallet", "list", "--json", network=None))
    assert [w["name"] for w in listed["wallets"]] == ["vault"]
    assert listed["wallets"][0]["policy"] == "2 of 3" and len(listed["wallets"][0]["fingerprints"]) == 3

    shown = one_json(run(runner, home, "wallet", "show", "vault", "--json", network=None))
    assert shown["descriptor"] == doc["descriptor"] and len(shown["keys"]) == 3

    address = run(runner, home, "wallet", "address", "vault", "7", "--change", "--json", network=None)
    assert address.exit_code == 0, address.output
    adoc = one_json(address)
    derived = reference.derive(7, branch_index=1)
    assert adoc["address"] == derived.address(NETWORKS["regtest"])
    assert adoc["witness_script"] == derived.witness_script().data.hex()
    assert adoc["change"] is True and adoc["keys"][0]["path"] == "m/48h/1h/0h/2h/1/7"


def test_human_views(runner, home):
    assert run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault()).exit_code == 0
    shown = run(runner, home, "wallet", "show", "vault", network=None)
    assert shown.exit_code == 0 and "2 of 3" in shown.stdout and "73c5da0a" in shown.stdout
    assert "m/48h/1h/0h/2h" in shown.stdout
    listed = run(runner, home, "wallet", "list", network=None)
    assert "vault" in listed.stdout and "regtest" in listed.stdout
    address = run(runner, home, "wallet", "address", "vault", "0", network=None)
    assert address.exit_code == 0 and "bcrt1q" in address.stdout


def test_register_split_descriptors_and_idempotent(runner, home):
    first = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault("/0/*"),
                "--change-descriptor", vault("/1/*"), "--json")
    assert first.exit_code == 0, first.output
    again = one_json(run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault(), "--json"))
    assert again["registered"] is False and again["descriptor"] == one_json(first)["descriptor"]


def test_wrong_checksum_exit_3_names_expected(runner, home):
    from coldsign.wallet.scriptexpr import descriptor_checksum

    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault() + "#aaaaaaaa",
                 "--json")
    assert result.exit_code == 3
    error = one_json(result)["error"]
    assert error["code"] == "descriptor"
    assert error["message"] == f"descriptor checksum mismatch: got #aaaaaaaa, expected #{descriptor_checksum(vault())}"


def test_seed_not_in_wallet_exit_4(runner, home, tmp_path):
    words = tmp_path / "d.txt"
    words.write_text(ZOO)
    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault(),
                 "--mnemonic-file", str(words), "--json")
    assert result.exit_code == 4
    assert one_json(result)["error"]["code"] == "seed-not-in-wallet"
    assert not (home / "wallets" / "vault.json").exists()


def test_name_taken_exit_4(runner, home):
    assert run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault()).exit_code == 0
    other = f"wpkh({key_text(ABANDON, 'm/84h/1h/0h')})"
    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", other, "--json")
    assert result.exit_code == 4 and one_json(result)["error"]["code"] == "wallet-exists"


def test_mainnet_keys_on_regtest_exit_3(runner, home):
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(ABANDON))
    xpub = root.derive("m/84h/0h/0h").to_public().to_base58()
    result = run(runner, home, "wallet", "register", "--name", "w", "--json",
                 "--descriptor", f"wpkh([73c5da0a/84h/0h/0h]{xpub}/<0;1>/*)")
    assert result.exit_code == 3
    assert one_json(result)["error"]["message"] == "the key is an xpub (main) key but the network is regtest"


def test_register_needs_network(runner, home):
    result = run(runner, home, "wallet", "register", "--name", "vault", "--descriptor", vault(), network=None)
    assert result.exit_code == 2
    assert "no network given" in result.output


def test_unknown_wallet_exit_3(runner, home):
    result = run(runner, home, "wallet", "show", "nope", "--json", network=None)
    assert result.exit_code == 3
    error = one_json(result)["error"]
    assert error["code"] == "not-found" and str(home / "wallets") in error["message"]
    assert run(runner, home, "wallet", "address", "nope", "0", network=None).exit_code == 3


def test_empty_list(runner, home):
    assert one_json(run(runner, home, "wallet", "list", "--json", network=None)) == {"wallets": []}


@pytest.mark.parametrize("command", ["register", "list", "show", "address"])
def test_help_has_example(runner, command):
    result = runner.invoke(app, ["wallet", command, "--help"])
    assert result.exit_code == 0 and "Example: coldsign" in result.stdout


def test_show_prints_every_key_origin_of_the_descriptor(tmp_path):
    """Key origins look like Rich markup ("[c8e3b3d3/48h/1h/0h/2h]"); the human view must print
    them as they are, or a custodian would compare a descriptor with keys missing their origin."""
    import walletkit as W

    home = tmp_path / "home"
    descriptor = W.descriptor("wsh-sortedmulti")
    registered = CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "wallet", "register",
                                          "--name", "vault", "--descriptor", descriptor])
    assert registered.exit_code == 0, registered.output
    shown = CliRunner().invoke(app, ["--home", str(home), "wallet", "show", "vault"])
    flat = "".join(shown.stdout.split())
    for name in W.COSIGNERS:
        origin = W.key_expression(name, "wsh-sortedmulti").split("]")[0] + "]"
        assert origin in flat, origin
