"""The Coldcard/Sparrow multisig setup file: write, parse, and the errors naming their line.

Fixture: walletkit's 2-of-3 regtest vault (alice, bob, carol at m/48h/1h/0h/2h, `wsh(sortedmulti)`,
fingerprints 397a4a50, c8e3b3d3, 70ecd03a); the file as coldsign writes it, and hand-written
variants the way Sparrow and Coldcard write them (per-key Derivation lines, Vpub keys, comments).
"""

from __future__ import annotations

import pytest
from embit import base58

import walletkit as W
from coldsign.errors import BadInput
from coldsign.network import Network
from coldsign.wallet import multisig_file as mf
from coldsign.wallet.descriptor import WalletDescriptor


@pytest.fixture(scope="module")
def vault():
    return W.wallet("wsh-sortedmulti")


def header(policy="2 of 3", fmt="P2WSH", derivation="m/48'/1'/0'/2'"):
    lines = ["# Coldcard Multisig setup file (created by Sparrow)", "#", "Name: vault", f"Policy: {policy}"]
    if derivation:
        lines.append(f"Derivation: {derivation}")
    return lines + [f"Format: {fmt}", ""]


def key_lines(vault):
    return [f"{k.origin.fingerprint.hex().upper()}: {k.xpub.to_base58()}" for k in vault.keys]


def test_write_then_parse_round_trip(vault):
    text = mf.write(vault, "vault")
    assert "Policy: 2 of 3\n" in text and "Format: P2WSH\n" in text and "Derivation: m/48'/1'/0'/2'\n" in text
    for key in vault.keys:
        assert f"{key.origin.fingerprint.hex().upper()}: {key.xpub.to_base58()}\n" in text
    parsed = mf.parse(text, Network.REGTEST)
    assert parsed.name == "vault"
    assert parsed.descriptor == vault and parsed.descriptor.canonical() == vault.canonical()


def test_long_names_are_cut_to_coldcards_20(vault):
    text = mf.write(vault, "treasury-cold-storage-2026")
    assert "Name: treasury-cold-storag\n" in text


def test_per_key_derivation_lines(vault):
    lines = header(derivation=None)
    for key_line in key_lines(vault):
        lines += ["Derivation: m/48'/1'/0'/2'", key_line]
    assert mf.parse("\n".join(lines), Network.REGTEST).descriptor == vault


def test_mixed_paths_are_written_per_key():
    alice = W.key_expression("alice", "wsh-sortedmulti")
    bob = W.key_expression("bob", "sh-wpkh")  # another account path: 49h/1h/0h
    wallet = WalletDescriptor.parse(f"wsh(sortedmulti(1,{alice},{bob}))", Network.REGTEST)
    text = mf.write(wallet, "mixed")
    assert text.count("Derivation:") == 2 and "Derivation: m/49'/1'/0'\n" in text
    assert mf.parse(text, Network.REGTEST).descriptor == wallet


def test_vpub_keys_are_read_as_tpub(vault):
    vpubs = []
    for key in vault.keys:
        data = base58.decode_check(key.xpub.to_base58())
        vpubs.append(f"{key.origin.fingerprint.hex()}: " + base58.encode_check(bytes.fromhex("02575483") + data[4:]))
    text = "\n".join(header() + vpubs)
    assert vpubs[0].split(": ")[1].startswith("Vpub")
    assert mf.parse(text, Network.REGTEST).descriptor == vault


def test_policy_with_slash_and_lowercase_format(vault):
    text = "\n".join(header(policy="2/3", fmt="p2wsh") + key_lines(vault))
    assert mf.parse(text, Network.REGTEST).descriptor == vault


@pytest.mark.parametrize("fmt", ["P2SH-P2WSH", "P2WSH-P2SH", "P2SH"])
def test_other_formats_are_refused_by_name(vault, fmt):
    with pytest.raises(BadInput) as err:
        mf.parse("\n".join(header(fmt=fmt) + key_lines(vault)), Network.REGTEST)
    assert err.value.message == (f"line 6: Format {fmt} is not supported; coldsign registers P2WSH "
                                 "(native segwit) multisig wallets only")


@pytest.mark.parametrize("mutate,message", [
    (lambda l: [x for x in l if not x.startswith("Policy")], "the multisig file has no 'Policy: M of N' line"),
    (lambda l: [x for x in l if not x.startswith("Format")], "the multisig file has no 'Format: P2WSH' line"),
    (lambda l: [x.replace("2 of 3", "2 of 4") for x in l], "Policy says 2 of 4 but the file lists 3 keys"),
    (lambda l: [x.replace("2 of 3", "4 of 3") for x in l], "Policy 4 of 3: M must be between 1 and N"),
    (lambda l: [x.replace("2 of 3", "two of three") for x in l], "line 4: Policy must read 'M of N', got 'two of three'"),
    (lambda l: [x for x in l if not x.startswith("Derivation")],
     "line 7: key 1 has no Derivation: line before it"),
    (lambda l: [x.replace("m/48'/1'/0'/2'", "48/1/0/2") for x in l],
     "line 5: Derivation must be a path like m/48'/1'/0'/2', got '48/1/0/2'"),
    (lambda l: l[:2] + ["Wallet: vault"] + l[2:], "line 3: unknown label 'Wallet'"),
    (lambda l: l + ["just some words"], "line 11: expected 'Label: value' or 'XFP: xpub'"),
    (lambda l: l[:-1] + [l[-1].split(": ")[0] + ": xprv9s21ZrQH143K"], "line 10: expected an extended public key after the fingerprint"),
])
def test_malformed_files_name_the_problem(vault, mutate, message):
    lines = mutate(header() + key_lines(vault))
    with pytest.raises(BadInput) as err:
        mf.parse("\n".join(lines), Network.REGTEST)
    assert err.value.message == message


def test_a_descriptor_error_names_the_key_line(vault):
    lines = header(derivation="m/48'/1'/0'/1'") + key_lines(vault)  # depth fits, child number does not
    with pytest.raises(BadInput) as err:
        mf.parse("\n".join(lines), Network.REGTEST)
    assert err.value.where == "line 8"
    assert err.value.message.startswith("key 1: the xpub's child number does not match")


def test_mainnet_file_on_regtest_names_the_line(vault):
    lines = header() + key_lines(vault)
    with pytest.raises(BadInput) as err:
        mf.parse("\n".join(lines), Network.MAIN)
    assert err.value.where == "line 8" and "tpub" in err.value.message


def test_size_limit():
    with pytest.raises(BadInput) as err:
        mf.parse("#" * (mf.MULTISIG_FILE_MAX_CHARS + 1), Network.REGTEST)
    assert err.value.message == f"the multisig file is longer than the limit of {mf.MULTISIG_FILE_MAX_CHARS} characters"


def test_only_sortedmulti_wallets_are_written():
    with pytest.raises(BadInput) as err:
        mf.write(W.wallet("wpkh"), "single")
    assert err.value.message == "a Coldcard multisig file holds wsh(sortedmulti) wallets; this one is wpkh"


def test_detection(vault):
    assert mf.looks_like_multisig_file(mf.write(vault, "vault"))
    assert mf.looks_like_multisig_file("\n".join(key_lines(vault)))
    assert not mf.looks_like_multisig_file(vault.canonical())


def test_a_key_line_cannot_smuggle_in_a_key_the_policy_never_counted(vault):
    """A 1-of-1 file whose one key line carries ",[fp/path]tpub..." after the xpub must not become
    a 1-of-2 wallet holding a key the Policy line never counted (the value went into descriptor text)."""
    alice, bob = vault.keys[0], vault.keys[1]
    smuggled = (f"{alice.origin.fingerprint.hex().upper()}: {alice.xpub.to_base58()}/<0;1>/*,"
                f"[{bob.origin.fingerprint.hex()}/48h/1h/0h/2h]{bob.xpub.to_base58()}")
    with pytest.raises(BadInput) as err:
        mf.parse("\n".join(header(policy="1 of 1") + [smuggled]), Network.REGTEST)
    assert err.value.message == "line 8: after the fingerprint comes one extended public key (base58 letters only)"


@pytest.mark.parametrize("policy", ["1 of " + "9" * 5000, "9" * 5000 + " of 3"])
def test_a_policy_with_thousands_of_digits_is_bad_input_not_a_crash(vault, policy):
    with pytest.raises(BadInput) as err:
        mf.parse("\n".join(header(policy=policy) + key_lines(vault)), Network.REGTEST)
    assert err.value.message == f"line 4: Policy must read 'M of N', got {policy[:40]!r}"


def test_a_derivation_step_with_thousands_of_digits_is_bad_input_not_a_crash(vault):
    lines = header(policy="1 of 1", derivation="m/" + "9" * 5000 + "'") + key_lines(vault)[:1]
    with pytest.raises(BadInput) as err:
        mf.parse("\n".join(lines), Network.REGTEST)
    assert err.value.message == ("derivation index 999999999999... (5000 digits) in key 1's origin is out of range "
                                 "(max 2147483647)")
