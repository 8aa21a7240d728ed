"""The signer's own guarantees, beyond the refusal rules (tests/unit/test_refusals.py).

Wallets and PSBTs from tests/walletkit.py: `honest(kind)` spends two 100,000-sat coins at receive
0/0 and 0/1, pays 150,000 sat out and sends the rest (less 2 sat/vB) to change 1/0.
Covers embit 0.8.0's known pitfalls (taproot final witness, PSBT_IN_TAP_KEY_SIG, a shared default
map, reprs printing keys), the check of every new signature before anything is written, and the
per-input report.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import walletkit as W
from coldsign.cli.main import app
from coldsign.errors import VerificationFailed
from coldsign.network import Network
from coldsign.psbt import fields as F
from coldsign.psbt.review import review
from coldsign.psbt.sign import check_signatures, sign


def signed_report(kind: str, signer: str = "alice"):
    wallet, psbt = W.honest(kind)
    result = review(psbt, Network.REGTEST, wallet, wallet_name="vault")
    return psbt, result, sign(psbt, result, wallet, W.seed(signer))


def test_taproot_gets_a_key_path_signature_and_no_final_witness():
    psbt, result, report = signed_report("tr")
    check_signatures(report, result)
    assert report.signed == [0, 1] and report.consensus_checked == [0, 1]
    for i in range(2):
        scope = report.psbt.inputs[i]
        assert len(scope.get(F.PSBT_IN_TAP_KEY_SIG)) == 64   # SIGHASH_DEFAULT: no sighash byte
        assert scope.get(F.PSBT_IN_FINAL_SCRIPTWITNESS) is None
        assert scope.get(F.PSBT_IN_PARTIAL_SIG) is None
    assert psbt.input(0).tap_key_sig is None   # the PSBT given is left as it was


def test_taproot_key_signature_survives_a_round_trip_typed():
    from coldsign.psbt.codec import Psbt

    _, _, report = signed_report("tr")
    again = Psbt.parse(report.psbt.serialize())
    assert again.input(0).tap_key_sig == report.psbt.input(0).tap_key_sig


def test_psbts_built_from_transactions_share_no_maps():
    _, one = W.honest()
    _, two = W.honest()
    one.inputs[0].set(0xFC, b"\x08coldsign\x00", b"x")   # a proprietary key on one PSBT only
    assert two.inputs[0].get(0xFC, b"\x08coldsign\x00") is None
    copy = one.copy()
    copy.inputs[1].set(0xFC, b"\x08coldsign\x01", b"y")
    assert one.inputs[1].get(0xFC, b"\x08coldsign\x01") is None


def test_reprs_never_show_keys():
    from coldsign.keys.derive import AccountSigner
    from coldsign.keys.secret import Secret

    seed = W.seed("alice")
    root = seed.root.reveal()
    wallet = W.wallet("wpkh")
    signer = AccountSigner(root, seed.fingerprint, wallet.keys[0].origin.path, wallet.keys[0].xpub)
    xprv = root.to_base58()
    wif = root.key.wif()
    words = W.mnemonic("alice")
    _, _, report = signed_report("wpkh")
    for text in (repr(seed), str(seed), repr(seed.root), repr(signer), repr(Secret(words)), repr(report)):
        assert xprv not in text and wif not in text and words.split()[0] + " " + words.split()[1] not in text
    assert repr(seed) == f"SeedKey(fingerprint={seed.fingerprint.hex()})"


def test_multisig_signature_is_checked_against_an_independent_digest():
    psbt, result, report = signed_report("wsh-sortedmulti")
    check_signatures(report, result)
    assert report.signature_checked == [0, 1] and report.consensus_checked == []
    assert [len(report.psbt.input(i).partial_sigs) for i in range(2)] == [1, 1]


@pytest.mark.parametrize("kind, code", [("wpkh", "consensus"), ("sh-wpkh", "consensus"),
                                         ("wsh-sortedmulti", "signature")])
def test_a_wrong_digest_is_caught_before_anything_is_written(kind, code, monkeypatch):
    from coldsign.psbt import sighash

    real = sighash.SegwitV0Sighash.digest
    monkeypatch.setattr(sighash.SegwitV0Sighash, "digest",
                        lambda self, *a, **k: bytes(reversed(real(self, *a, **k))))
    _, result, report = signed_report(kind)
    with pytest.raises(VerificationFailed) as caught:
        check_signatures(report, result)
    assert {d["code"] for d in caught.value.details} == {code}
    assert sorted(d["index"] for d in caught.value.details) == [0, 1]


def test_a_wrong_taproot_tweak_is_caught_by_the_kernel(monkeypatch):
    from coldsign.psbt import sign as sign_module

    monkeypatch.setattr(sign_module, "_taproot_output_secret", lambda secret, pub: secret)  # untweaked
    _, result, report = signed_report("tr")
    with pytest.raises(VerificationFailed, match="2 new signature"):
        check_signatures(report, result)


def test_cli_writes_nothing_when_the_check_fails(monkeypatch, tmp_path):
    from coldsign.psbt import sighash

    monkeypatch.setattr(sighash.SegwitV0Sighash, "digest", lambda self, *a, **k: b"\x01" * 32)
    home = tmp_path / "alice"
    words = W.write_mnemonic(tmp_path, "alice")
    CliRunner().invoke(app, ["--home", str(home), "--network", "regtest", "wallet", "register", "--name",
                             "vault", "--descriptor", W.descriptor("wpkh"), "--mnemonic-file", str(words)])
    _, psbt = W.honest()
    given = tmp_path / "in.psbt"
    given.write_bytes(psbt.serialize())
    out = tmp_path / "out.psbt"
    result = CliRunner().invoke(app, ["--home", str(home), "psbt", "sign", str(given), "--mnemonic-file",
                                      str(words), "--out", str(out), "--json"])
    assert result.exit_code == 5, result.output
    assert json.loads(result.stdout)["error"]["code"] == "signature-check"
    assert not out.exists()


def test_a_second_signer_adds_its_signature_and_skips_nothing():
    wallet, psbt = W.honest("wsh-sortedmulti")
    first = sign(psbt, review(psbt, Network.REGTEST, wallet), wallet, W.seed("alice")).psbt
    second = sign(first, review(first, Network.REGTEST, wallet), wallet, W.seed("bob"))
    assert second.signed == [0, 1] and second.skipped == []
    assert [len(second.psbt.input(i).partial_sigs) for i in range(2)] == [2, 2]
    assert [r.signatures for r in review(second.psbt, Network.REGTEST, wallet).inputs] == [2, 2]


def test_a_final_input_is_skipped_with_its_reason():
    """Input 0 arrives final but keeps its derivation (some tools keep it), so it is provably the
    wallet's; input 1 is unsigned."""
    from coldsign.psbt.codec import Psbt
    from coldsign.psbt.fields import compact_size

    wallet, psbt = W.honest()
    first = sign(psbt, review(psbt, Network.REGTEST, wallet), wallet, W.seed("alice")).psbt
    [(pubkey, sig)] = first.input(0).partial_sigs.items()
    witness = compact_size(2) + compact_size(len(sig)) + sig + compact_size(len(pubkey)) + pubkey
    first.inputs[0].remove(F.PSBT_IN_PARTIAL_SIG)
    first.inputs[0].set(F.PSBT_IN_FINAL_SCRIPTWITNESS, b"", witness)
    first.inputs[1].remove(F.PSBT_IN_PARTIAL_SIG)
    first = Psbt.parse(first.serialize())
    report = sign(first, review(first, Network.REGTEST, wallet), wallet, W.seed("alice"))
    assert report.signed == [1]
    assert report.skipped == [(0, "already final")]


def test_a_final_input_without_derivation_is_not_provably_ours():
    from coldsign.psbt.codec import Psbt

    wallet, psbt = W.honest()
    first = sign(psbt, review(psbt, Network.REGTEST, wallet), wallet, W.seed("alice")).psbt
    view = first.input(0)
    [(pubkey, sig)] = view.partial_sigs.items()
    view.set_final(None, [sig, pubkey])   # the BIP-174 finalizer drops the derivation
    first = Psbt.parse(first.serialize())
    codes = {f.code for f in review(first, Network.REGTEST, wallet).refusals}
    assert codes == {"foreign-input"}


def test_batch_signing_on_threads_gives_the_serial_signatures():
    """Deterministic (RFC 6979) signatures: the threaded batch must equal one-by-one signing, in order."""
    import hashlib

    from embit.util import secp256k1

    from coldsign.keys import ecdsa

    jobs = [(hashlib.sha256(b"m%d" % i).digest(), hashlib.sha256(b"k%d" % i).digest()) for i in range(300)]
    assert len(jobs) >= ecdsa.BATCH_MIN_FOR_THREADS
    batch = ecdsa.sign_der(jobs)
    one_by_one = [secp256k1.ecdsa_signature_serialize_der(secp256k1.ecdsa_sign(d, k)) for d, k in jobs]
    assert batch == one_by_one


def test_a_large_psbt_is_signed_on_threads_and_every_input_checks():
    """300 inputs (above the batch threshold): every signature lands on its own input and passes
    libbitcoinkernel."""
    wallet = W.wallet("wpkh")
    coins = [W.coin(wallet, 0, i) for i in range(300)]
    _, psbt = W.honest(coins=coins, payments=[(W.EXTERNAL_SCRIPT, 15_000_000)])
    result = review(psbt, Network.REGTEST, wallet)
    report = sign(psbt, result, wallet, W.seed("alice"))
    check_signatures(report, result)
    assert report.signed == list(range(300)) and report.consensus_checked == list(range(300))
    assert [s.input for s in report.signatures] == list(range(300))


@pytest.mark.parametrize("kind, version", [("wsh-sortedmulti", 0), ("wsh-sortedmulti", 2), ("tr", 0), ("wpkh", 2)])
def test_a_signers_answer_carries_its_signatures_and_the_transaction_only(kind, version):
    from coldsign.psbt.codec import Psbt, combine, signatures_only, to_version_2
    from coldsign.watch.collect import finalize_checked, signers

    wallet, psbt = W.honest(kind)
    if version == 2:
        psbt = to_version_2(psbt)
    answers = []
    for name in W.signers_of(kind):
        result = review(psbt, Network.REGTEST, wallet, wallet_name="vault")
        report = sign(psbt, result, wallet, W.seed(name))
        check_signatures(report, result)
        answer = Psbt.parse(signatures_only(report.psbt, psbt).serialize())   # valid BIP-174/370 on its own
        assert answer.txid() == psbt.txid() and answer.version == version
        assert len(answer.serialize()) < len(report.psbt.serialize())
        kept = {t for m in answer.inputs for t, _, _ in m}
        assert kept <= {F.PSBT_IN_PARTIAL_SIG, F.PSBT_IN_TAP_KEY_SIG, F.PSBT_IN_PREVIOUS_TXID, F.PSBT_IN_OUTPUT_INDEX,
                        F.PSBT_IN_SEQUENCE}
        assert kept & {F.PSBT_IN_PARTIAL_SIG, F.PSBT_IN_TAP_KEY_SIG}
        assert not any(m.get(F.PSBT_IN_NON_WITNESS_UTXO) or m.get(F.PSBT_IN_WITNESS_UTXO) for m in answer.inputs)
        answers.append(answer)
    # The coordinator's PSBT and the answers alone make the final transaction, accepted by libbitcoinkernel.
    merged = combine([psbt, *answers])
    assert signers(merged, wallet).complete
    assert finalize_checked(merged).txid == psbt.txid()


def test_an_answer_needs_the_unsigned_psbt_of_the_same_transaction():
    from coldsign.errors import BadInput
    from coldsign.psbt.codec import signatures_only

    _, one = W.honest()
    _, other = W.honest(fee_rate=5)
    with pytest.raises(BadInput, match="another transaction"):
        signatures_only(one, other)
