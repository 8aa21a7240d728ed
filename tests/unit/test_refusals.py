"""One hostile PSBT per refusal rule (issue 2 §6), each through `psbt inspect` and `psbt sign`.

The wallet is alice's wpkh account (tests/walletkit.py) unless a case says otherwise. The honest
PSBT spends two coins (receive 0/0 and 0/1, 100,000 sat each, each the first output of its own
previous transaction) and pays 150,000 sat to an external P2WPKH with change to 1/0 at 2 sat/vB.
Every hostile case changes one thing; `inspect --json` must list the rule as a refusal and
`sign` must exit 4 naming it, and write nothing.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import walletkit as W
from walletkit import coin, honest
from coldsign.cli.main import app
from coldsign.psbt import fields as F

H = 0x80000000


def origin(wallet, *path: int) -> bytes:
    key = wallet.keys[0]
    return key.origin.fingerprint + b"".join(p.to_bytes(4, "little") for p in path)


def change_derivation(psbt, wallet, path: tuple[int, ...]) -> None:
    """Rewrite the change output's (last output's) BIP-32 derivation to claim `path`."""
    scope = psbt.outputs[-1]
    [(pubkey, _)] = scope.items(F.PSBT_OUT_BIP32_DERIVATION)
    scope.set(F.PSBT_OUT_BIP32_DERIVATION, pubkey, origin(wallet, *path))


def _missing_previous_tx():
    wallet, psbt = honest()
    psbt.inputs[0].remove(F.PSBT_IN_NON_WITNESS_UTXO)
    return psbt


def _previous_tx_mismatch():
    wallet, psbt = honest()
    psbt.inputs[0].set(F.PSBT_IN_NON_WITNESS_UTXO, b"", psbt.inputs[1].get(F.PSBT_IN_NON_WITNESS_UTXO))
    return psbt


def _witness_utxo_mismatch():
    wallet, psbt = honest()
    script = wallet.script_pubkey(0, 0)
    psbt.inputs[0].set(F.PSBT_IN_WITNESS_UTXO, b"", (90_000).to_bytes(8, "little") + bytes([len(script)]) + script)
    return psbt


def _foreign_change():
    """Change 'to our key' inside a 1-of-2 P2WSH with a foreign cosigner: anyone with that key takes it."""
    from embit.script import p2wsh

    wallet = W.wallet("wpkh")
    ours = wallet.keys[0].pubkey_at(1, 0)
    foreign = bytes.fromhex("02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    witness_script = b"\x51\x21" + ours + b"\x21" + foreign + b"\x52\xae"
    script = p2wsh(__import__("embit.script", fromlist=["Script"]).Script(witness_script)).data
    _, psbt = honest(payments=[(W.EXTERNAL_SCRIPT, 150_000), (script, 40_000)], change_index=None)
    psbt.outputs[1].set(F.PSBT_OUT_BIP32_DERIVATION, ours, origin(wallet, 84 | H, 1 | H, 0 | H, 1, 0))
    return psbt


def _path_foreign_prefix():
    wallet, psbt = honest()
    change_derivation(psbt, wallet, (84 | H, 1 | H, 1 | H, 1, 0))
    return psbt


def _path_hardened():
    wallet, psbt = honest()
    change_derivation(psbt, wallet, (84 | H, 1 | H, 0 | H, 1 | H, 0))
    return psbt


def _path_branch():
    wallet, psbt = honest()
    change_derivation(psbt, wallet, (84 | H, 1 | H, 0 | H, 2, 0))
    return psbt


def _path_gap():
    _, psbt = honest(change_index=1_002)   # inputs use index 1: 1,002 is 1,001 above
    return psbt


def _sighash():
    _, psbt = honest()
    psbt.inputs[1].set(F.PSBT_IN_SIGHASH_TYPE, b"", (0x83).to_bytes(4, "little"))
    return psbt


def _foreign_input():
    bob = W.wallet("wpkh")  # alice's; the second coin pays bob's key below, with no derivation of ours
    from coldsign.keys.export import account_key_expression
    from coldsign.network import Network
    from coldsign.wallet.descriptor import WalletDescriptor

    bobs = WalletDescriptor.parse(f"wpkh({account_key_expression(W.seed('bob'), W.ACCOUNT_PATHS['wpkh'], Network.REGTEST)})",
                                  Network.REGTEST)
    foreign = coin(bobs, 0, 0, salt=99)
    _, psbt = honest(coins=[coin(bob, 0, 0), foreign])
    psbt.inputs[1].remove(F.PSBT_IN_BIP32_DERIVATION)
    return psbt


def _duplicate_input():
    wallet = W.wallet("wpkh")
    same = coin(wallet, 0, 0)
    _, psbt = honest(coins=[same, same])
    return psbt


def _dust():
    _, psbt = honest(payments=[(W.EXTERNAL_SCRIPT, 150_000), (W.EXTERNAL_SCRIPT, 100)])
    return psbt


def _two_op_returns():
    _, psbt = honest(payments=[(W.EXTERNAL_SCRIPT, 150_000), (b"\x6a\x01\x01", 0), (b"\x6a\x01\x02", 0)])
    return psbt


def _fee_share():
    _, psbt = honest(payments=[(W.EXTERNAL_SCRIPT, 5_000)], fee_rate=30)   # ~6,000 sat fee on 5,000 sent
    return psbt


def _fee_rate():
    _, psbt = honest(payments=[(W.EXTERNAL_SCRIPT, 1_000_000)],
                     coins=[coin(W.wallet("wpkh"), 0, i, 1_000_000) for i in range(2)], fee_rate=1_100)
    return psbt


def _input_script_mismatch():
    wallet = W.wallet("wpkh")
    lying = coin(wallet, 0, 0, script=wallet.script_pubkey(0, 7))  # claims 0/0, pays 0/7's script
    _, psbt = honest(coins=[lying, coin(wallet, 0, 1)])
    return psbt


CASES = {
    "missing-previous-tx": _missing_previous_tx,
    "previous-tx-mismatch": _previous_tx_mismatch,
    "witness-utxo-mismatch": _witness_utxo_mismatch,
    "foreign-change": _foreign_change,
    "unusual-path/prefix": _path_foreign_prefix,
    "unusual-path/hardened": _path_hardened,
    "unusual-path/branch": _path_branch,
    "unusual-path/gap": _path_gap,
    "sighash-not-all": _sighash,
    "foreign-input": _foreign_input,
    "duplicate-input": _duplicate_input,
    "dust-output": _dust,
    "multiple-op-return": _two_op_returns,
    "high-fee/share": _fee_share,
    "high-fee/rate": _fee_rate,
    "input-script-mismatch": _input_script_mismatch,
}

MESSAGES = {  # a phrase each refusal's message must carry, so the right rule fired for the right reason
    "unusual-path/prefix": "prefix is not the origin path",
    "unusual-path/hardened": "must not be hardened",
    "unusual-path/branch": "change branch 2",
    "unusual-path/gap": "more than 1000 above",
    "high-fee/share": "leaving the wallet (limit 10%)",
    "high-fee/rate": "sat/vB (limit 1000)",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("signer")
    words = W.write_mnemonic(home, "alice")
    result = CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "wallet", "register",
                                      "--name", "vault", "--descriptor", W.descriptor("wpkh"),
                                      "--mnemonic-file", str(words)])
    assert result.exit_code == 0, result.output
    return home


def test_the_honest_psbt_is_signed(home, tmp_path):
    _, psbt = honest()
    path = tmp_path / "honest.psbt"
    path.write_bytes(psbt.serialize())
    result = CliRunner().invoke(app, ["--home", str(home), "psbt", "sign", str(path), "--wallet", "vault",
                                      "--mnemonic-file", str(home / "alice-words.txt"),
                                      "--out", str(tmp_path / "out.psbt"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["signed_inputs"] == 2


@pytest.mark.parametrize("case", sorted(CASES))
def test_refusal(case, home, tmp_path):
    code = case.split("/")[0]
    path = tmp_path / "hostile.psbt"
    path.write_bytes(CASES[case]().serialize())

    inspect = CliRunner().invoke(app, ["--home", str(home), "psbt", "inspect", str(path), "--wallet", "vault",
                                       "--json"])
    assert inspect.exit_code == 0, inspect.output
    refusals = [w for w in json.loads(inspect.stdout)["warnings"] if w["severity"] == "refusal"]
    assert code in {w["code"] for w in refusals}, refusals
    if case in MESSAGES:
        assert any(MESSAGES[case] in w["message"] for w in refusals if w["code"] == code), refusals

    out = tmp_path / "signed.psbt"
    sign = CliRunner().invoke(app, ["--home", str(home), "psbt", "sign", str(path), "--wallet", "vault",
                                    "--mnemonic-file", str(home / "alice-words.txt"), "--out", str(out), "--json"])
    assert sign.exit_code == 4, sign.output
    error = json.loads(sign.stdout)["error"]
    assert error["code"] == "refused"
    assert code in {d["code"] for d in error["details"]}
    assert not out.exists()


def test_high_fee_is_allowed_only_when_asked(home, tmp_path):
    path = tmp_path / "fee.psbt"
    path.write_bytes(_fee_share().serialize())
    out = tmp_path / "signed.psbt"
    result = CliRunner().invoke(app, ["--home", str(home), "psbt", "sign", str(path), "--wallet", "vault",
                                      "--mnemonic-file", str(home / "alice-words.txt"), "--out", str(out),
                                      "--allow-high-fee", "--json"])
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_fee_above_five_percent_warns(home, tmp_path):
    # 150,000 sat sent; a fee of ~10,500 sat (7%) at 50 sat/vB on ~210 vB.
    _, psbt = honest(fee_rate=50)
    path = tmp_path / "fee.psbt"
    path.write_bytes(psbt.serialize())
    result = CliRunner().invoke(app, ["--home", str(home), "psbt", "inspect", str(path), "--json"])
    warnings = json.loads(result.stdout)["warnings"]
    assert [w["severity"] for w in warnings if w["code"] == "fee-above-5-percent"] == ["warning"]
    assert not [w for w in warnings if w["severity"] == "refusal"]


def test_taproot_needs_no_previous_transaction(tmp_path):
    from coldsign.network import Network
    from coldsign.psbt.review import review

    wallet, psbt = honest("tr")
    for scope in psbt.inputs:
        scope.remove(F.PSBT_IN_NON_WITNESS_UTXO)
    result = review(psbt, Network.REGTEST, wallet, wallet_name="vault")
    assert result.refusals == []
    assert all(i.amount_verified for i in result.inputs)
