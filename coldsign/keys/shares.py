"""SLIP-39 Shamir shares of a seed: split a BIP-39 entropy into M-of-N mnemonics, combine them back.

Built on `embit.slip39` (its share encoding, RS1024 checksum, Feistel encryption and GF(256)
interpolation); this module adds the two-level group split embit lacks, checks a set of shares
itself so that every failure names the share number and the problem, and wraps every embit
exception. Nothing here echoes a word: errors name share positions, groups and member indexes.

The master secret is the BIP-39 *entropy* of the seed's mnemonic (16 or 32 bytes), so a combined
set gives back the very same 12 or 24 words. The SLIP-39 passphrase (printable ASCII) encrypts the
master secret; a wrong one cannot be detected and yields a different, valid-looking seed, which is
why `CombineResult` carries the mnemonic for the caller to show the fingerprint.

Only the original (non-extendable) SLIP-39 format is produced and read, as embit implements it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from coldsign.errors import BadInput, SecretProblem
from coldsign.keys.secret import Secret

MASTER_SECRET_LENGTHS = (16, 32)  # bytes: the entropy of a 12- or 24-word BIP-39 mnemonic
MAX_SHARES = 16                   # SLIP-39: at most 16 groups and 16 members per group
MAX_ITERATION_EXPONENT = 15       # NOTE: 4 bits, so shares stay readable by extendable-format tools
MIN_SHARE_WORDS = 20              # SLIP-39: 7 words of metadata and checksum + at least 128 bits
MAX_SHARE_WORDS = 60              # hard limit on untrusted input (a 256-bit share has 33 words)


@dataclass(frozen=True)
class UsedShare:
    """One share that went into the result: its 1-based position in the input, group and member."""

    position: int
    group: int   # 1-based group index
    member: int  # 1-based member index within the group


@dataclass(frozen=True)
class ShareInfo:
    """The public header of one share (no secret material)."""

    identifier: int
    iteration_exponent: int
    group: int              # 1-based
    group_threshold: int
    group_count: int
    member: int             # 1-based
    member_threshold: int
    secret_bits: int


@dataclass(frozen=True, repr=False)
class CombineResult:
    """The recovered master secret and its BIP-39 mnemonic (both Secret), and which shares were used."""

    master_secret: Secret   # bytes: BIP-39 entropy
    mnemonic: Secret        # str: the BIP-39 words of `master_secret`
    identifier: int
    iteration_exponent: int
    group_threshold: int
    group_count: int
    used: tuple[UsedShare, ...]
    unused: tuple[int, ...]  # input positions of shares in groups that were not complete

    @property
    def groups_used(self) -> tuple[int, ...]:
        return tuple(sorted({u.group for u in self.used}))

    def __repr__(self) -> str:
        return (f"CombineResult(identifier={self.identifier}, groups_used={self.groups_used}, "
                f"shares_used={[u.position for u in self.used]})")


# --- split -------------------------------------------------------------------------------------

def split(master_secret: Secret, threshold: int | None, count: int | None, *,
          groups: list[tuple[int, int]] | None = None, group_threshold: int = 1,
          passphrase: Secret | None = None, iteration_exponent: int = 1) -> list[list[Secret]]:
    """Split `master_secret` (16 or 32 bytes) into SLIP-39 share mnemonics, one list per group.

    Single group: `split(secret, 2, 3)` gives one group of 3 shares, any 2 of which recover it.
    Groups: `split(secret, None, None, groups=[(2, 3), (3, 5)], group_threshold=2)`; then
    `threshold` and `count` must be None. `iteration_exponent` e costs 10000·2^e PBKDF2 rounds
    per combine. Shares are random (fresh identifier and polynomials from the OS CSPRNG).
    """
    from embit.misc import secure_randint
    from embit.slip39 import Share, ShareSet

    secret = master_secret.reveal()
    if not isinstance(secret, (bytes, bytearray)) or len(secret) not in MASTER_SECRET_LENGTHS:
        raise BadInput("the master secret to split must be 16 or 32 bytes (the entropy of a 12- or 24-word seed)")
    secret = bytes(secret)
    layout = _layout(threshold, count, groups, group_threshold)
    if not 0 <= iteration_exponent <= MAX_ITERATION_EXPONENT:
        raise BadInput(f"the iteration exponent must be between 0 and {MAX_ITERATION_EXPONENT}")
    password = _passphrase_bytes(passphrase)

    identifier = secure_randint(0, 2**15 - 1)
    encrypted = ShareSet.encrypt(secret, identifier, iteration_exponent, password)
    result: list[list[Secret]] = []
    group_secrets = _split_level(ShareSet, encrypted, group_threshold if groups else 1, len(layout))
    for (group_index, group_secret), (member_threshold, member_count) in zip(group_secrets, layout):
        mnemonics = []
        for member_index, value in _split_level(ShareSet, group_secret, member_threshold, member_count):
            share = Share(share_bit_length=len(secret) * 8, id=identifier, exponent=iteration_exponent,
                          group_index=group_index, group_threshold=group_threshold if groups else 1,
                          group_count=len(layout), member_index=member_index,
                          member_threshold=member_threshold, value=int.from_bytes(value, "big"))
            mnemonics.append(Secret(share.mnemonic()))
        result.append(mnemonics)
    return result


def _layout(threshold, count, groups, group_threshold) -> list[tuple[int, int]]:
    if groups is None:
        if threshold is None or count is None:
            raise BadInput("give a threshold and a count (M-of-N), or groups")
        if group_threshold != 1:
            raise BadInput("a group threshold needs groups")
        layout = [(threshold, count)]
    else:
        if threshold is not None or count is not None:
            raise BadInput("give either a threshold and a count, or groups, not both")
        layout = [tuple(g) for g in groups]
        if not 1 <= len(layout) <= MAX_SHARES:
            raise BadInput(f"SLIP-39 allows 1 to {MAX_SHARES} groups, {len(layout)} were asked for")
        if not 1 <= group_threshold <= len(layout):
            raise BadInput(f"the group threshold must be between 1 and the number of groups ({len(layout)})")
    for number, (m, n) in enumerate(layout, 1):
        where = f"group {number}: " if groups is not None else ""
        if not 1 <= n <= MAX_SHARES:
            raise BadInput(f"{where}SLIP-39 allows 1 to {MAX_SHARES} shares, {n} were asked for")
        if not 1 <= m <= n:
            raise BadInput(f"{where}the threshold must be between 1 and the share count ({n}), not {m}")
        if m == 1 and n > 1:
            raise BadInput(f"{where}1-of-{n} shares would be {n} copies of one share; use 1-of-1 instead",
                           hint="SLIP-39 forbids a member threshold of 1 with more than one share")
    return layout


def _split_level(ShareSet, secret: bytes, threshold: int, count: int) -> list[tuple[int, bytes]]:
    """Shamir-split one level; threshold 1 means every share is the secret itself."""
    if threshold == 1:
        return [(i, secret) for i in range(count)]
    return ShareSet.split_secret(secret, threshold, count)


def _passphrase_bytes(passphrase: Secret | None) -> bytes:
    text = "" if passphrase is None else passphrase.reveal()
    if not all(32 <= ord(c) <= 126 for c in text):
        raise SecretProblem("a SLIP-39 passphrase may only contain printable ASCII characters")
    return text.encode("ascii")


# --- combine -----------------------------------------------------------------------------------

def inspect_share(share: Secret, *, position: int = 1) -> ShareInfo:
    """Parse one share mnemonic (checksum included) and return its public header."""
    parsed = _parse(share, position)
    return _info(parsed)


def combine(shares: list[Secret], passphrase: Secret | None = None) -> CombineResult:
    """Recover the master secret from SLIP-39 share mnemonics (in any order, extra shares allowed).

    Every share is checked (words, length, checksum); then the set (same identifier, exponent,
    group threshold and count, length; no repeated index); then each group with enough members is
    interpolated and the SLIP-39 digest verified. Raises BadInput naming the share number.
    """
    from embit import bip39
    from embit.slip39 import ShareSet

    if not shares:
        raise BadInput("no shares were given")
    if len(shares) > MAX_SHARES * MAX_SHARES:
        raise BadInput(f"{len(shares)} shares is more than a SLIP-39 set can hold")
    password = _passphrase_bytes(passphrase)
    parsed = [_parse(s, n) for n, s in enumerate(shares, 1)]
    _check_set(parsed)
    first = parsed[0]

    by_group: dict[int, list[tuple[int, object]]] = {}
    for position, share in enumerate(parsed, 1):
        by_group.setdefault(share.group_index, []).append((position, share))
    complete, used, unused, shortfalls = [], [], [], []
    for group_index in sorted(by_group):
        members = by_group[group_index]
        threshold = _group_member_threshold(group_index, members)
        if len(members) < threshold:
            unused.extend(p for p, _ in members)
            shortfalls.append(f"group {group_index + 1} has {len(members)} of its {threshold} shares")
            continue
        complete.append((group_index, _group_secret(ShareSet, group_index, members, threshold)))
        used.extend(UsedShare(p, group_index + 1, s.member_index + 1) for p, s in members)

    if len(complete) < first.group_threshold:
        if first.group_count == 1:
            got, need = len(parsed), _group_member_threshold(first.group_index, by_group[first.group_index])
            raise BadInput(f"not enough shares: {got} given, {need} needed")
        detail = f" ({'; '.join(shortfalls)})" if shortfalls else ""
        raise BadInput(f"not enough groups: {len(complete)} complete, {first.group_threshold} needed{detail}")

    if first.group_threshold == 1:
        encrypted = complete[0][1]
        if any(value != encrypted for _, value in complete[1:]):
            raise BadInput("the shares do not fit together: complete groups disagree on the secret",
                           hint="one of the shares is from another set or was altered")
    else:
        encrypted = _interpolate(ShareSet, complete, "groups")
    secret = ShareSet(parsed).decrypt(encrypted, password)
    try:
        words = bip39.mnemonic_from_bytes(secret)
    except (ValueError, TypeError):  # NOTE: embit's message carries no secret; not chained
        raise BadInput(f"the recovered secret is {len(secret)} bytes, which is not a BIP-39 entropy length") from None
    return CombineResult(master_secret=Secret(secret), mnemonic=Secret(words),
                         identifier=first.id, iteration_exponent=first.exponent,
                         group_threshold=first.group_threshold, group_count=first.group_count,
                         used=tuple(sorted(used, key=lambda u: u.position)), unused=tuple(sorted(unused)))


def _parse(share: Secret, position: int):
    from embit.slip39 import Share
    from embit.wordlists.slip39 import SLIP39_WORDS

    text = share.reveal()
    if not isinstance(text, str):
        raise BadInput(f"share {position} is not text")
    words = unicodedata.normalize("NFKD", text).lower().split()
    if len(words) > MAX_SHARE_WORDS:
        raise BadInput(f"share {position} has {len(words)} words; a SLIP-39 share has at most {MAX_SHARE_WORDS}")
    if len(words) < MIN_SHARE_WORDS:
        raise BadInput(f"share {position} has {len(words)} words; a SLIP-39 share has at least {MIN_SHARE_WORDS}")
    if (10 * (len(words) - 7)) % 16 > 8:
        raise BadInput(f"share {position} has {len(words)} words, which is not a valid SLIP-39 share length")
    known = set(SLIP39_WORDS)
    for number, word in enumerate(words, 1):
        if word not in known:
            raise BadInput(f"share {position}: word {number} is not in the SLIP-39 word list",
                           hint="check the spelling of that word")
    try:
        return Share.parse(" ".join(words))
    except (ValueError, SyntaxError) as e:  # NOTE: embit's messages carry no words; not chained
        raise BadInput(f"share {position}: {_explain(str(e))}") from None


def _explain(message: str) -> str:
    if message == "Invalid Checksum":
        return "the checksum does not match (a word is wrong or out of order)"
    if message == "Share not 0-padded properly":
        return "the padding bits are not zero, so this is not a valid share"
    if message.startswith("Group threshold"):
        return "its group threshold is greater than its group count"
    return "not a valid SLIP-39 share"


def _info(s) -> ShareInfo:
    return ShareInfo(identifier=s.id, iteration_exponent=s.exponent, group=s.group_index + 1,
                     group_threshold=s.group_threshold, group_count=s.group_count,
                     member=s.member_index + 1, member_threshold=s.member_threshold,
                     secret_bits=s.share_bit_length)


def _check_set(parsed: list) -> None:
    first = parsed[0]
    seen: dict[tuple[int, int], int] = {}
    for position, s in enumerate(parsed, 1):
        if s.id != first.id:
            raise BadInput(f"share {position} is from a different share set than share 1 (identifiers differ)",
                           hint="combine only shares made in the same split")
        if s.exponent != first.exponent:
            raise BadInput(f"share {position} is from a different share set than share 1 (iteration exponents differ)")
        if s.group_threshold != first.group_threshold:
            raise BadInput(f"share {position} disagrees with share 1 on the group threshold")
        if s.group_count != first.group_count:
            raise BadInput(f"share {position} disagrees with share 1 on the group count")
        if s.share_bit_length != first.share_bit_length:
            raise BadInput(f"share {position} has a different length than share 1")
        if s.group_index >= s.group_count:
            raise BadInput(f"share {position} is in group {s.group_index + 1} of a {s.group_count}-group set")
        key = (s.group_index, s.member_index)
        if key in seen:
            raise BadInput(f"share {position} has the same group and member index as share {seen[key]}",
                           hint="each share may be given once")
        seen[key] = position


def _group_member_threshold(group_index: int, members: list) -> int:
    (first_position, first), *rest = members
    for position, s in rest:
        if s.member_threshold != first.member_threshold:
            raise BadInput(f"shares {first_position} and {position} are in group {group_index + 1} "
                           f"but disagree on its member threshold")
    return first.member_threshold


def _group_secret(ShareSet, group_index: int, members: list, threshold: int) -> bytes:
    if threshold == 1:
        return members[0][1].bytes
    points = [(s.member_index, s.bytes) for _, s in members]
    return _interpolate(ShareSet, points, f"group {group_index + 1}")


def _interpolate(ShareSet, points: list[tuple[int, bytes]], what: str) -> bytes:
    try:
        return ShareSet.recover_secret(points)
    except ValueError:
        raise BadInput(f"the shares of {what} do not fit together (the SLIP-39 digest does not match)",
                       hint="one of the shares is from another set or was altered") from None
