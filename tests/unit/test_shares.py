"""coldsign.keys.shares: SLIP-39 split -> combine round trips, subsets, refusals, redaction.

Secrets are fixed byte strings (16 and 32 bytes, i.e. 12- and 24-word seeds); the shares are
random per run, so every property is checked over all threshold-sized subsets. Independent check:
embit's own SLIP-39 reader recovers the same seed from our shares.
"""

import itertools

import pytest
from embit import bip39
from embit.slip39 import ShareSet

from coldsign.errors import BadInput, SecretProblem
from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey
from coldsign.keys.shares import CombineResult, combine, inspect_share, split

SECRET_16 = bytes(range(16))                      # 12 words
SECRET_32 = bytes.fromhex("7f" * 16 + "80" * 16)  # 24 words


def _combine(shares, passphrase=None) -> CombineResult:
    return combine(list(shares), passphrase)


@pytest.mark.parametrize("secret", [SECRET_16, SECRET_32], ids=["128", "256"])
def test_one_of_one(secret):
    groups = split(Secret(secret), 1, 1, iteration_exponent=0)
    assert len(groups) == 1 and len(groups[0]) == 1
    words = groups[0][0].reveal().split()
    assert len(words) == (20 if len(secret) == 16 else 33)
    result = _combine(groups[0])
    assert result.master_secret.reveal() == secret
    assert result.mnemonic.reveal() == bip39.mnemonic_from_bytes(secret)
    assert [(u.position, u.group, u.member) for u in result.used] == [(1, 1, 1)]


@pytest.mark.parametrize("threshold,count", [(2, 3), (3, 5)])
@pytest.mark.parametrize("secret", [SECRET_16, SECRET_32], ids=["128", "256"])
def test_every_threshold_subset_recovers_and_fewer_fail(secret, threshold, count):
    passphrase = Secret("custody vault 7")
    (shares,) = split(Secret(secret), threshold, count, passphrase=passphrase, iteration_exponent=0)
    assert len(shares) == count and len({s.reveal() for s in shares}) == count
    for subset in itertools.combinations(range(count), threshold):
        result = _combine([shares[i] for i in reversed(subset)], passphrase)  # order does not matter
        assert result.master_secret.reveal() == secret
        assert sorted(u.member for u in result.used) == [i + 1 for i in subset]
        assert result.groups_used == (1,)
    for subset in itertools.combinations(range(count), threshold - 1):
        with pytest.raises(BadInput) as caught:
            _combine([shares[i] for i in subset], passphrase)
        assert caught.value.message == f"not enough shares: {threshold - 1} given, {threshold} needed"
    everything = _combine(shares, passphrase)  # extra shares are checked and used
    assert everything.master_secret.reveal() == secret and len(everything.used) == count
    assert bip39.mnemonic_to_bytes(ShareSet.recover_mnemonic(
        [s.reveal() for s in shares[:threshold]], b"custody vault 7")) == secret


def test_two_groups_two_of_three_and_three_of_five():
    passphrase = Secret("TREZOR")
    first, second = split(Secret(SECRET_32), None, None, groups=[(2, 3), (3, 5)], group_threshold=2,
                          passphrase=passphrase, iteration_exponent=0)
    assert (len(first), len(second)) == (3, 5)
    info = inspect_share(second[4])
    assert (info.group, info.group_threshold, info.group_count) == (2, 2, 2)
    assert (info.member, info.member_threshold, info.secret_bits) == (5, 3, 256)
    for a in itertools.combinations(first, 2):
        for b in itertools.combinations(second, 3):
            assert _combine([*b, *a], passphrase).master_secret.reveal() == SECRET_32
    result = _combine([first[0], second[1], first[2], second[3], second[4]], passphrase)
    assert result.groups_used == (1, 2)
    assert [(u.position, u.group, u.member) for u in result.used] == [
        (1, 1, 1), (2, 2, 2), (3, 1, 3), (4, 2, 4), (5, 2, 5)]
    assert bip39.mnemonic_to_bytes(ShareSet.recover_mnemonic(
        [s.reveal() for s in (*first[:2], *second[:3])], b"TREZOR")) == SECRET_32
    with pytest.raises(BadInput) as caught:
        _combine(first, passphrase)
    assert caught.value.message == "not enough groups: 1 complete, 2 needed"
    with pytest.raises(BadInput) as caught:
        _combine([*first[:2], *second[:2]], passphrase)
    assert caught.value.message == "not enough groups: 1 complete, 2 needed (group 2 has 2 of its 3 shares)"


def test_incomplete_extra_group_is_reported_unused():
    g1, g2, g3 = split(Secret(SECRET_16), None, None, groups=[(2, 3)] * 3, group_threshold=2,
                       iteration_exponent=0)
    result = _combine([g1[0], g3[1], g1[1], g2[0], g2[2]])
    assert result.master_secret.reveal() == SECRET_16
    assert result.unused == (2,)
    assert result.groups_used == (1, 2)


def test_group_threshold_one_lets_any_group_recover():
    groups = split(Secret(SECRET_16), None, None, groups=[(1, 1), (2, 3)], group_threshold=1,
                   iteration_exponent=0)
    assert _combine(groups[0]).master_secret.reveal() == SECRET_16
    assert _combine(groups[1][1:]).master_secret.reveal() == SECRET_16


def test_fingerprint_of_combined_mnemonic_matches_the_original_seed():
    original = bip39.mnemonic_from_bytes(SECRET_16)
    (shares,) = split(Secret(SECRET_16), 2, 3, iteration_exponent=0)
    result = _combine(shares[1:])
    assert SeedKey.from_mnemonic(result.mnemonic).fingerprint == SeedKey.from_mnemonic(Secret(original)).fingerprint


def test_wrong_passphrase_gives_another_seed_without_error():
    (shares,) = split(Secret(SECRET_16), 2, 3, passphrase=Secret("right"))  # default exponent 1
    assert inspect_share(shares[0]).iteration_exponent == 1
    assert _combine(shares[:2], Secret("wrong")).master_secret.reveal() != SECRET_16
    assert _combine(shares[:2], Secret("right")).master_secret.reveal() == SECRET_16


def test_reprs_and_errors_show_no_words():
    (shares,) = split(Secret(SECRET_16), 2, 3, iteration_exponent=0)
    words = set(" ".join(s.reveal() for s in shares).split())
    assert all(repr(s) == "Secret(<redacted>)" for s in shares)
    result = _combine(shares[:2])
    shown = repr(result) + str(result.master_secret) + repr(result.mnemonic)
    assert not words & set(shown.replace(",", " ").replace("(", " ").replace(")", " ").split())
    assert SECRET_16.hex() not in shown and "Secret(<redacted>)" == repr(result.mnemonic)
    broken = shares[1].reveal().split()
    broken[5] = "academic" if broken[5] != "academic" else "acid"
    with pytest.raises(BadInput) as caught:
        _combine([shares[0], Secret(" ".join(broken))])
    assert caught.value.message == "share 2: the checksum does not match (a word is wrong or out of order)"
    assert not words & set(str(caught.value).split())


def test_share_input_problems_name_the_share():
    (shares,) = split(Secret(SECRET_16), 2, 3, iteration_exponent=0)
    typo = shares[2].reveal().split()
    typo[2] = "bitcoin"  # not a SLIP-39 word
    cases = [
        ([shares[0], Secret(" ".join(typo))], "share 2: word 3 is not in the SLIP-39 word list"),
        ([shares[0], shares[0]], "share 2 has the same group and member index as share 1"),
        ([shares[0], Secret("academic acid")], "share 2 has 2 words; a SLIP-39 share has at least 20"),
        ([Secret("academic " * 61)], "share 1 has 61 words; a SLIP-39 share has at most 60"),
        ([], "no shares were given"),
    ]
    (other,) = split(Secret(SECRET_16), 2, 3, iteration_exponent=0)
    cases.append(([shares[0], other[1]], None))
    for given, message in cases:
        with pytest.raises(BadInput) as caught:
            _combine(given)
        if message is not None:
            assert caught.value.message == message
        else:  # a share from another split: identifiers differ (or, 1 time in 32768, the digest fails)
            assert caught.value.message in (
                "share 2 is from a different share set than share 1 (identifiers differ)",
                "the shares of group 1 do not fit together (the SLIP-39 digest does not match)")


def test_share_outside_its_group_count_is_refused():
    from embit.slip39 import Share

    forged = Share(share_bit_length=128, id=1234, exponent=0, group_index=3, group_threshold=1,
                   group_count=2, member_index=0, member_threshold=1, value=5).mnemonic()
    with pytest.raises(BadInput) as caught:
        _combine([Secret(forged)])
    assert caught.value.message == "share 1 is in group 4 of a 2-group set"


def test_messy_share_text_is_normalised():
    (shares,) = split(Secret(SECRET_16), 2, 3, iteration_exponent=0)
    messy = Secret("  " + shares[1].reveal().upper().replace(" ", " \t ") + "\n")
    assert _combine([shares[0], messy]).master_secret.reveal() == SECRET_16


@pytest.mark.parametrize("args,kwargs,message", [
    ((Secret(b"\x00" * 20), 2, 3), {}, "the master secret to split must be 16 or 32 bytes "
                                        "(the entropy of a 12- or 24-word seed)"),
    ((Secret(SECRET_16), 1, 3), {}, "1-of-3 shares would be 3 copies of one share; use 1-of-1 instead"),
    ((Secret(SECRET_16), 4, 3), {}, "the threshold must be between 1 and the share count (3), not 4"),
    ((Secret(SECRET_16), 2, 17), {}, "SLIP-39 allows 1 to 16 shares, 17 were asked for"),
    ((Secret(SECRET_16), 2, None), {}, "give a threshold and a count (M-of-N), or groups"),
    ((Secret(SECRET_16), 2, 3), {"group_threshold": 2}, "a group threshold needs groups"),
    ((Secret(SECRET_16), 2, 3), {"groups": [(2, 3)]}, "give either a threshold and a count, or groups, not both"),
    ((Secret(SECRET_16), None, None), {"groups": [(2, 3), (2, 3)], "group_threshold": 3},
     "the group threshold must be between 1 and the number of groups (2)"),
    ((Secret(SECRET_16), None, None), {"groups": [(2, 3), (0, 3)], "group_threshold": 2},
     "group 2: the threshold must be between 1 and the share count (3), not 0"),
    ((Secret(SECRET_16), None, None), {"groups": [(1, 1)] * 17}, "SLIP-39 allows 1 to 16 groups, 17 were asked for"),
    ((Secret(SECRET_16), 2, 3), {"iteration_exponent": 16}, "the iteration exponent must be between 0 and 15"),
])
def test_split_refuses_bad_layouts(args, kwargs, message):
    with pytest.raises(BadInput) as caught:
        split(*args, **kwargs)
    assert caught.value.message == message


def test_passphrase_must_be_printable_ascii():
    with pytest.raises(SecretProblem) as caught:
        split(Secret(SECRET_16), 2, 3, passphrase=Secret("pässword"))
    assert caught.value.message == "a SLIP-39 passphrase may only contain printable ASCII characters"
