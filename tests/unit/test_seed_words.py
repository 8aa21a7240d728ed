"""Typed BIP-39 words: four-letter completion, suggestions for typos, and both fingerprints of a
seed with a passphrase (checked against an independent derivation with bip-utils)."""

from __future__ import annotations

import hashlib

import pytest

from coldsign.keys.secret import Secret
from coldsign.keys.seed import SeedKey, complete_word, suggest_words

ABANDON = "abandon " * 11 + "about"


@pytest.mark.parametrize("typed, whole", [
    ("abandon", "abandon"), ("ABANDON", "abandon"), ("aban", "abandon"), ("abando", "abandon"),
    ("zoo", "zoo"),                 # a three-letter word is itself
    ("tomat", "tomato"),
])
def test_a_word_or_its_unique_four_letter_start_completes(typed, whole):
    assert complete_word(typed) == whole


@pytest.mark.parametrize("typed", ["abc", "aba", "abandonx", "tomatoe", "", "xyzz"])
def test_no_completion_for_short_ambiguous_or_unknown_text(typed):
    assert complete_word(typed) is None


def test_every_word_completes_from_its_first_four_letters():
    from embit.wordlists.bip39 import WORDLIST

    assert len(WORDLIST) == 2048
    assert all(complete_word(word[:4]) == word for word in WORDLIST)


def test_three_letters_shared_by_several_words_complete_to_none_but_are_suggested():
    assert complete_word("aba") is None
    assert suggest_words("aba")[0] == "abandon"


@pytest.mark.parametrize("typed, first", [("abandn", "abandon"), ("tomatoe", "tomato"), ("wlak", "walk"),
                                          ("bananna", "banana")])
def test_a_typo_is_offered_the_word_meant_first(typed, first):
    close = suggest_words(typed)
    assert close[0] == first and 1 <= len(close) <= 4


def _bare_fingerprint(words: str, passphrase: str) -> str:
    """Master fingerprint computed without embit: PBKDF2 (BIP-39) then bip-utils' BIP-32."""
    from bip_utils import Bip32Slip10Secp256k1

    seed = hashlib.pbkdf2_hmac("sha512", words.encode(), b"mnemonic" + passphrase.encode(), 2048)
    return Bip32Slip10Secp256k1.FromSeed(seed).FingerPrint().ToBytes().hex()


def test_fingerprints_with_and_without_the_passphrase():
    plain = SeedKey.from_mnemonic(Secret(ABANDON))
    assert plain.fingerprints() == {"fingerprint": _bare_fingerprint(ABANDON, "")}
    assert plain.fingerprint_without_passphrase is None
    with_phrase = SeedKey.from_mnemonic(Secret(ABANDON), Secret("TREZOR"))
    assert with_phrase.fingerprints() == {"fingerprint": _bare_fingerprint(ABANDON, "TREZOR"),
                                          "fingerprint_without_passphrase": _bare_fingerprint(ABANDON, "")}
    assert with_phrase.fingerprint_hex != plain.fingerprint_hex
    assert len(with_phrase.seed.reveal()) == 64 and "TREZOR" not in repr(with_phrase)


@pytest.mark.parametrize("typed", ["caf\u00e9 cr\u00e8me", "cafe\u0301 cre\u0300me", "\uff23\uff41\uff46\u00e9"])
def test_a_passphrase_is_salted_in_nfkd_as_bip39_says(typed):
    """BIP-39: salt = "mnemonic" + passphrase, both UTF-8 NFKD. An accented passphrase typed as NFC
    (what keyboards produce), NFD, or with full-width letters must give the seed every other BIP-39
    wallet derives; the expectation is the BIP's PBKDF2 computed here with hashlib alone."""
    import unicodedata

    expected = hashlib.pbkdf2_hmac("sha512", ABANDON.encode(),
                                   ("mnemonic" + unicodedata.normalize("NFKD", typed)).encode(), 2048, 64)
    assert SeedKey.from_mnemonic(Secret(ABANDON), Secret(typed)).seed.reveal() == expected
