"""Wallet export files as Sparrow and Specter Desktop write them, read by `parse_setup_text` and by
`wallet register --file`; the broken variants are refused with exit 3 naming the file and the line
(or the JSON field).

The files are tests/data/exports/ (their README names the application code each follows). Broken
variants are made from them line by line here, any new checksum computed by embit. Expected
addresses are derived by embit from tests/walletkit.py's descriptors, not by coldsign.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from embit.descriptor import Descriptor
from hypothesis import given, settings
from hypothesis import strategies as st
from embit.descriptor.checksum import add_checksum, checksum
from embit.networks import NETWORKS
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.errors import BadInput, DescriptorError
from coldsign.network import Network
from coldsign.wallet.descriptor import WalletDescriptor
from coldsign.wallet.setupfile import parse_setup_text

EXPORTS = Path(__file__).parents[1] / "data" / "exports"
# (file, walletkit kind, source, label) of every export in tests/data/exports
EXPORT_FILES = [
    ("sparrow-vault.txt", "wsh-sortedmulti", "descriptor", None),     # Sparrow Descriptor.java, the vault
    ("sparrow-alice-tr.txt", "tr", "descriptor", None),               # Sparrow Descriptor.java on Windows (CRLF)
    ("specter-vault.json", "wsh-sortedmulti", "json", "vault"),       # Specter wallet.py Wallet.account_map
    ("sparrow-specter-alice.json", "wpkh", "json", "alice"),          # Sparrow SpecterDesktop.java, bare key
]


def export_text(name: str) -> str:
    return (EXPORTS / name).read_bytes().decode()


def embit_address(descriptor: str, change: int, index: int = 0) -> str:
    return Descriptor.from_string(descriptor.split("#")[0]).derive(index, branch_index=change).address(
        NETWORKS["regtest"])


def first_addresses(descriptor: str) -> tuple[str, str]:
    """The first receive and change addresses, derived by embit."""
    return embit_address(descriptor, 0), embit_address(descriptor, 1)


def descriptors_in(name: str) -> list[str]:
    text = export_text(name)
    if name.endswith(".json"):
        return [json.loads(text)["descriptor"]]
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def refused(text: str, error=BadInput):
    with pytest.raises(error) as caught:
        parse_setup_text(text, Network.REGTEST)
    return caught.value


# ---------------------------------------------------------------- the real files

@pytest.mark.parametrize("name", [f[0] for f in EXPORT_FILES])
def test_every_export_descriptor_carries_a_checksum_embit_verifies(name):
    for text in descriptors_in(name):
        body, _, written = text.partition("#")
        assert written == checksum(body), text


@pytest.mark.parametrize("name,kind,source,label", EXPORT_FILES)
def test_each_export_gives_the_wallets_first_receive_and_change_addresses(name, kind, source, label):
    setup = parse_setup_text(export_text(name), Network.REGTEST)
    assert setup.source == source
    assert setup.extra.get("label") == label
    wallet = WalletDescriptor.parse(setup.descriptor, Network.REGTEST)
    assert (wallet.address(0, 0), wallet.address(1, 0)) == first_addresses(W.descriptor(kind))
    assert first_addresses(setup.descriptor) == first_addresses(W.descriptor(kind))


def test_sparrow_vault_keeps_the_multipath_lines_key_order():
    # Sparrow sorts the keys by their 0/0 pubkeys: bob, alice, carol (tests/data/exports/README.md)
    setup = parse_setup_text(export_text("sparrow-vault.txt"), Network.REGTEST)
    wallet = WalletDescriptor.parse(setup.descriptor, Network.REGTEST)
    assert [k.fingerprint.hex() for k in wallet.keys] == [W.seed(n).fingerprint_hex for n in ("bob", "alice", "carol")]


def test_sparrow_change_line_lists_the_keys_in_another_order_and_still_pairs():
    lines = export_text("sparrow-vault.txt").splitlines()
    receive, change = lines[5], lines[8]
    order = [[k.split("]")[0] for k in line.split("[")[1:]] for line in (receive, change)]
    assert order[0] != order[1] and sorted(order[0]) == sorted(order[1])
    # receive and change lines only, as a Bitcoin Core user would keep them
    setup = parse_setup_text("\n".join(lines[4:]) + "\n", Network.REGTEST)
    assert first_addresses(setup.descriptor) == first_addresses(W.descriptor("wsh-sortedmulti"))


def test_sparrow_multipath_line_alone_is_the_wallet():
    lines = export_text("sparrow-vault.txt").splitlines()
    setup = parse_setup_text("\n".join(lines[:2]), Network.REGTEST)
    assert setup.descriptor == WalletDescriptor.parse(lines[1], Network.REGTEST).canonical()


# ---------------------------------------------------------------- broken variants, located

def vault_lines() -> list[str]:
    """sparrow-vault.txt by line: 1 and 5, 8 comments; 2 /<0;1>/*, 6 receive, 9 change."""
    return export_text("sparrow-vault.txt").splitlines()


def alice_wpkh(branch: str) -> str:
    return add_checksum(f"wpkh({W.key_expression('alice', 'wpkh').replace('/<0;1>/*', branch)})")


def with_line(number: int, text: str) -> str:
    lines = vault_lines()
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


def test_a_change_line_of_another_wallet_names_its_line():
    error = refused(with_line(9, alice_wpkh("/1/*")))
    assert error.where == "line 9"
    assert error.message == ("this change descriptor (/1/*) is not the same wallet as the /<0;1>/* descriptor "
                             "on line 2")


def test_a_receive_line_of_another_threshold_names_its_line():
    receive = add_checksum(vault_lines()[5].split("#")[0].replace("sortedmulti(2,", "sortedmulti(1,"))
    error = refused(with_line(6, receive))
    assert error.where == "line 6" and error.message.startswith("this receive descriptor (/0/*) is not the same wallet")


def test_receive_and_change_lines_of_two_wallets_name_the_change_line():
    lines = vault_lines()
    error = refused("\n".join([lines[4], lines[5], lines[6], lines[7], alice_wpkh("/1/*")]))
    assert error.where == "line 5"
    assert error.message == ("this change descriptor (/1/*) is not the same wallet as the receive descriptor (/0/*) "
                             "on line 2")


def test_a_checksum_that_does_not_verify_names_the_line_and_the_expected_checksum():
    lines = vault_lines()
    body, _, written = lines[5].partition("#")
    wrong = written[:-1] + ("q" if written[-1] != "q" else "p")
    error = refused(with_line(6, f"{body}#{wrong}"), DescriptorError)
    assert error.where == "line 6"
    assert error.message == f"descriptor checksum mismatch: got #{wrong}, expected #{checksum(body)}"


def test_multi_keeps_key_order_so_a_reordered_change_line_is_another_wallet():
    # the vault as wsh(multi): the order of the keys is part of the script, unlike sortedmulti
    lines = [add_checksum(line.split("#")[0].replace("sortedmulti", "multi")) if not line.startswith("#") and line
             else line for line in vault_lines()]
    error = refused("\n".join(lines))
    assert error.where == "line 9" and error.message.startswith("this change descriptor (/1/*) is not the same wallet")
    lines[8] = add_checksum(lines[5].split("#")[0].replace("/0/*", "/1/*"))
    setup = parse_setup_text("\n".join(lines), Network.REGTEST)
    assert setup.descriptor.startswith("wsh(multi(2,")


@pytest.mark.parametrize("text,where,message", [
    # a second receive line where the change line belongs
    ("\n".join(vault_lines()[:8] + [vault_lines()[5]]), "line 9",
     "a second receive descriptor (/0/*); the first is on line 6"),
    ("\n".join(vault_lines()[4:6]), "line 2", "a receive descriptor (/0/*) without its change descriptor (/1/*)"),
    ("\n".join(vault_lines()[7:9]), "line 2", "a change descriptor (/1/*) without its receive descriptor (/0/*)"),
    ("\n".join(vault_lines() + ["", alice_wpkh("/<0;1>/*")]), "line 11",
     "a fourth descriptor: a descriptor file holds one /<0;1>/* descriptor and its receive and change "
     "descriptors, at most"),
    # the bare account key of an Account Map is no descriptor line
    (json.loads(export_text("sparrow-specter-alice.json"))["descriptor"], "line 1",
     "every key must end in /<0;1>/*, /0/* (receive) or /1/* (change)"),
    ("# Receive and change descriptor (BIP389):\n\n", None,
     "the file holds no descriptor (only blank or # comment lines)"),
])
def test_descriptor_file_errors(text, where, message):
    error = refused(text)
    assert (error.where, error.message) == (where, message)


def test_an_unknown_file_is_refused_at_its_first_line():
    error = refused("Sparrow wallet backup\nnot a descriptor\n", DescriptorError)
    assert error.where == "line 1"
    assert error.message == "a descriptor starts with a script expression such as wpkh( or wsh("


@pytest.mark.parametrize("change,where,message,error_class", [
    (lambda d: d[:-1] + ("q" if d[-1] != "q" else "p"), 'the "descriptor" field', "descriptor checksum mismatch",
     DescriptorError),
    (lambda d: add_checksum(d.split("#")[0].replace("/0/*", "/1/*")), 'the "descriptor" field',
     "every key must end in /<0;1>/*, /0/* (receive) or nothing (the account xpub)", DescriptorError),
])
def test_account_map_errors_name_the_descriptor_field(change, where, message, error_class):
    doc = json.loads(export_text("specter-vault.json"))
    doc["descriptor"] = change(doc["descriptor"])
    error = refused(json.dumps(doc), error_class)
    assert error.where == where and error.message.startswith(message)


# ---------------------------------------------------------------- properties

VAULT = parse_setup_text(export_text("sparrow-vault.txt"), Network.REGTEST).descriptor
PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(st.permutations(vault_lines()))
def test_sparrow_lines_in_any_order_give_the_same_vault(lines):
    assert parse_setup_text("\n".join(lines), Network.REGTEST).descriptor == VAULT


@PROPERTY
@given(st.data())
def test_one_changed_character_is_refused_or_leaves_the_same_wallet(data):
    text = export_text("sparrow-vault.txt")
    at = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.characters(min_codepoint=9, max_codepoint=126).filter(lambda c: c != text[at]))
    try:
        setup = parse_setup_text(text[:at] + char + text[at + 1:], Network.REGTEST)
    except BadInput:
        return
    assert setup.descriptor == VAULT


# ---------------------------------------------------------------- wallet register --file

def register(home: Path, path: Path, *args: str):
    return CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "--json", "wallet", "register",
                                    "--name", "vault", "--file", str(path), *args])


@pytest.mark.parametrize("name,kind,source,label", EXPORT_FILES)
def test_wallet_register_reads_each_export(tmp_path, name, kind, source, label):
    result = register(tmp_path / "home", EXPORTS / name)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["source"] == source and doc.get("label") == label
    assert doc["first_address"] == embit_address(W.descriptor(kind), 0)
    assert first_addresses(doc["descriptor"]) == first_addresses(W.descriptor(kind))


def test_wallet_register_of_sparrow_vault_shows_bobs_key_at_its_position_in_the_file(tmp_path):
    words = W.write_mnemonic(tmp_path, "bob")
    result = register(tmp_path / "home", EXPORTS / "sparrow-vault.txt", "--mnemonic-file", str(words))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["seed_key"]["position"] == 1  # Sparrow's order: bob, alice, carol


def test_wallet_register_of_a_mismatching_file_is_exit_3_naming_file_and_line(tmp_path):
    path = tmp_path / "vault.txt"
    path.write_text(with_line(9, alice_wpkh("/1/*")))
    result = register(tmp_path / "home", path)
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["where"] == f"{path}: line 9"
    assert error["message"].startswith("this change descriptor (/1/*) is not the same wallet")
    assert not (tmp_path / "home" / "wallets" / "vault.json").exists()
