"""The fountain code under multi-part URs (BCR-2020-005): encoder, two decoders, simulation.

The encoder follows the reference (Blockchain Commons bc-ur / URKit) exactly, because the
decoder must agree with any compliant encoder on which fragments each part mixes:
``(seqNum || checksum) -> SHA-256 -> Xoshiro256**``, a degree drawn with the Walker-Vose
alias sampler over probabilities 1/i, then a Fisher-Yates shuffle of the fragment indexes.

Decoding differs from the reference on purpose. :class:`FountainDecoder` runs an
incremental Gaussian elimination over GF(2): each part is a row (a bitset of fragment
indexes as a Python int, its data as a Python int) reduced against the rows kept so far;
the message is solved the moment the rank reaches ``seq_len``, which is the earliest point
any decoder can finish. :class:`PeelingDecoder` is the reference's algorithm (simple parts
peel mixed ones), kept to measure the difference (:func:`simulate_join`).

Every part is validated against the first one (``seq_len``, ``message_len``, checksum,
fragment length) and against the hard limits before anything is allocated. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator

from coldsign.errors import BadInput, UsageProblem
from coldsign.limits import LIMITS
from coldsign.qr.bytewords import crc32
from coldsign.qr.errors import QRDecodeError

# NOTE: hard limits on what a stream of parts may announce, checked before allocating.
# 10,000 fragments is far beyond any animated QR a person would wait for; 4 MiB is above
# the largest PSBT worth showing as QR (coldsign.limits has no field for it yet).
MAX_FRAGMENTS = LIMITS.qr_max_fragments
MAX_MESSAGE_BYTES = LIMITS.qr_message_max_bytes
DEFAULT_MIN_FRAGMENT_LEN = 10
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


# --- Xoshiro256** seeded from SHA-256 ------------------------------------------------------

class Xoshiro256:
    """Xoshiro256** (Blackman & Vigna) whose state is the SHA-256 of a seed, read as four
    big-endian 64-bit words — as the UR reference seeds it. Not cryptographic."""

    __slots__ = ("_s",)

    def __init__(self, seed: bytes):
        digest = hashlib.sha256(seed).digest()
        self._s = [int.from_bytes(digest[i:i + 8], "big") for i in range(0, 32, 8)]

    @classmethod
    def from_crc32(cls, checksum: int) -> "Xoshiro256":
        """Seeded from a 32-bit checksum as 4 big-endian bytes (the reference's uint32 seed)."""
        return cls(checksum.to_bytes(4, "big"))

    def next(self) -> int:
        s0, s1, s2, s3 = self._s
        result = (_rotl((s1 * 5) & _U64, 7) * 9) & _U64
        t = (s1 << 17) & _U64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 45)
        self._s = [s0, s1, s2, s3]
        return result

    def next_double(self) -> float:
        """Uniform in [0, 1): next() / 2**64 in double precision, as the reference."""
        return self.next() / 18446744073709551616.0

    def next_int(self, low: int, high: int) -> int:
        """Uniform integer in [low, high] (inclusive), by scaling next_double."""
        return int(self.next_double() * (high - low + 1)) + low

    def next_byte(self) -> int:
        return self.next_int(0, 255)

    def next_data(self, count: int) -> bytes:
        return bytes(self.next_byte() for _ in range(count))


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & _U64


# --- Walker-Vose alias sampler, degree and fragment choice --------------------------------

class RandomSampler:
    """Draws an index with the given (unnormalized) probabilities, by the alias method.

    Built exactly as the reference builds it (indexes pushed in reverse order, small and
    large stacks popped from the back, left-to-right float sums) so that the same random
    doubles give the same indexes.
    """

    __slots__ = ("_probs", "_aliases")

    def __init__(self, probs: list[float]):
        if not probs or any(p < 0 for p in probs):
            raise ValueError("probabilities must be non-negative and not empty")
        total = 0.0
        for p in probs:  # a plain left fold: sum() may compensate and differ in the last bit
            total += p
        if total <= 0:
            raise ValueError("probabilities must not all be zero")
        n = len(probs)
        scaled = [p * n / total for p in probs]
        small: list[int] = []
        large: list[int] = []
        for i in range(n - 1, -1, -1):
            (small if scaled[i] < 1 else large).append(i)
        out_probs = [0.0] * n
        aliases = [0] * n
        while small and large:
            a = small.pop()
            g = large.pop()
            out_probs[a] = scaled[a]
            aliases[a] = g
            scaled[g] += scaled[a] - 1
            (small if scaled[g] < 1 else large).append(g)
        for i in large:
            out_probs[i] = 1.0
        for i in small:  # only through rounding
            out_probs[i] = 1.0
        self._probs = out_probs
        self._aliases = aliases

    def next(self, next_double: Callable[[], float]) -> int:
        r1 = next_double()
        r2 = next_double()
        i = int(len(self._probs) * r1)
        return i if r2 < self._probs[i] else self._aliases[i]


@lru_cache(maxsize=64)
def _degree_sampler(seq_len: int) -> RandomSampler:
    return RandomSampler([1.0 / i for i in range(1, seq_len + 1)])


def choose_degree(seq_len: int, rng: Xoshiro256) -> int:
    """How many fragments a mixed part XORs: 1..seq_len with probability ∝ 1/degree."""
    return _degree_sampler(seq_len).next(rng.next_double) + 1


def shuffled(items: list, rng: Xoshiro256, count: int | None = None) -> list:
    """Fisher-Yates shuffle as the reference draws it; ``count`` stops after that many
    items (the first items do not depend on later draws)."""
    remaining = list(items)
    result = []
    limit = len(remaining) if count is None else min(count, len(remaining))
    while len(result) < limit:
        result.append(remaining.pop(rng.next_int(0, len(remaining) - 1)))
    return result


@lru_cache(maxsize=4096)
def choose_fragments(seq_num: int, seq_len: int, checksum: int) -> frozenset[int]:
    """The fragment indexes part ``seq_num`` carries: itself for the first ``seq_len``
    parts, then a pseudo-random subset seeded by ``seq_num || checksum``."""
    if seq_num <= seq_len:
        return frozenset((seq_num - 1,))
    rng = Xoshiro256(seq_num.to_bytes(4, "big") + checksum.to_bytes(4, "big"))
    degree = choose_degree(seq_len, rng)
    return frozenset(shuffled(range(seq_len), rng, degree))


# --- parts and the encoder ----------------------------------------------------------------

@dataclass(frozen=True)
class FountainPart:
    """One part: which message (seq_len, message_len, checksum) and its mixed fragment data."""

    seq_num: int
    seq_len: int
    message_len: int
    checksum: int
    data: bytes

    @property
    def indexes(self) -> frozenset[int]:
        return choose_fragments(self.seq_num, self.seq_len, self.checksum)

    def description(self) -> str:
        """The reference's textual form, used by its test vectors."""
        return (f"seqNum:{self.seq_num}, seqLen:{self.seq_len}, messageLen:{self.message_len}, "
                f"checksum:{self.checksum}, data:{self.data.hex()}")


def find_nominal_fragment_length(message_len: int, min_fragment_len: int,
                                 max_fragment_len: int) -> int:
    """The smallest fragment count whose equal fragments fit ``max_fragment_len``, and the
    fragment length it gives (the reference's choice). A message shorter than
    ``min_fragment_len`` is one fragment."""
    if message_len < 1 or min_fragment_len < 1 or max_fragment_len < min_fragment_len:
        raise UsageProblem(
            f"fragment lengths must satisfy 1 <= min ({min_fragment_len}) <= max "
            f"({max_fragment_len}) for a message of {message_len} byte(s)")
    fragment_len = message_len
    for count in range(1, max(1, message_len // min_fragment_len) + 1):
        fragment_len = -(-message_len // count)
        if fragment_len <= max_fragment_len:
            break
    return fragment_len


def partition_message(message: bytes, fragment_len: int) -> list[bytes]:
    """Equal fragments; the last one padded with zero bytes."""
    count = -(-len(message) // fragment_len)
    padded = message.ljust(count * fragment_len, b"\x00")
    return [padded[i:i + fragment_len] for i in range(0, len(padded), fragment_len)]


def join_fragments(fragments: list[bytes], message_len: int) -> bytes:
    return b"".join(fragments)[:message_len]


def xor_bytes(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class FountainEncoder:
    """Parts for ``message``: the ``seq_len`` pure fragments first, then mixed ones forever."""

    def __init__(self, message: bytes, max_fragment_len: int, first_seq_num: int = 0,
                 min_fragment_len: int = DEFAULT_MIN_FRAGMENT_LEN):
        message = bytes(message)
        if not message:
            raise BadInput("cannot encode an empty message as fountain parts")
        if len(message) > MAX_MESSAGE_BYTES:
            raise BadInput(f"message of {len(message)} bytes is above the "
                           f"{MAX_MESSAGE_BYTES}-byte limit for QR transport")
        self.message_len = len(message)
        self.checksum = crc32(message)
        self.fragment_len = find_nominal_fragment_length(
            len(message), min(min_fragment_len, max_fragment_len), max_fragment_len)
        self._fragments = [int.from_bytes(f, "big")
                           for f in partition_message(message, self.fragment_len)]
        self.seq_len = len(self._fragments)
        if self.seq_len > MAX_FRAGMENTS:
            raise BadInput(f"message needs {self.seq_len} fragments, above the limit of "
                           f"{MAX_FRAGMENTS}", hint="use a larger maximum fragment length")
        self.seq_num = first_seq_num & _U32

    @property
    def is_single_part(self) -> bool:
        return self.seq_len == 1

    def part(self, seq_num: int) -> FountainPart:
        """The part numbered ``seq_num`` (1-based), independent of the encoder's position."""
        data = 0
        for i in choose_fragments(seq_num, self.seq_len, self.checksum):
            data ^= self._fragments[i]
        return FountainPart(seq_num, self.seq_len, self.message_len, self.checksum,
                            data.to_bytes(self.fragment_len, "big"))

    def next_part(self) -> FountainPart:
        # After 2**32 - 1 the counter wraps; 0 is skipped because it names no fragment.
        self.seq_num = (self.seq_num + 1) & _U32 or 1
        return self.part(self.seq_num)

    def __iter__(self) -> Iterator[FountainPart]:
        while True:
            yield self.next_part()


# --- validation shared by both decoders ---------------------------------------------------

@dataclass(frozen=True)
class Progress:
    """How far a decoder is: ``rank`` of ``seq_len`` fragments known or solvable."""

    rank: int
    seq_len: int
    parts_seen: int
    parts_useful: int

    @property
    def fraction(self) -> float:
        return self.rank / self.seq_len if self.seq_len else 0.0


def check_part_shape(part: FountainPart, where: str) -> None:
    """Refuse a part whose header is impossible or over the limits, before any allocation."""
    if not 1 <= part.seq_num <= _U32:
        raise QRDecodeError(f"sequence number {part.seq_num} is not in 1..2^32-1", where=where)
    if not 0 <= part.checksum <= _U32:
        raise QRDecodeError(f"checksum {part.checksum} is not a 32-bit value", where=where)
    if not 1 <= part.seq_len <= MAX_FRAGMENTS:
        raise QRDecodeError(f"sequence length {part.seq_len} is not in 1..{MAX_FRAGMENTS}",
                            where=where)
    if not 1 <= part.message_len <= MAX_MESSAGE_BYTES:
        raise QRDecodeError(f"message length {part.message_len} is not in "
                            f"1..{MAX_MESSAGE_BYTES} bytes", where=where)
    fragment_len = len(part.data)
    if fragment_len == 0 or -(-part.message_len // fragment_len) != part.seq_len:
        raise QRDecodeError(
            f"fragment of {fragment_len} byte(s) cannot split a {part.message_len}-byte "
            f"message into {part.seq_len} fragments", where=where)


def _part_where(part: FountainPart) -> str:
    return f"part {part.seq_num}"


class _Decoder:
    """What both decoders share: the first part fixes the message; others must match it."""

    def __init__(self) -> None:
        self._shape: tuple[int, int, int, int] | None = None
        self._message: bytes | None = None
        self.parts_seen = 0
        self.parts_useful = 0
        self._failure: QRDecodeError | None = None

    def _admit(self, part: FountainPart) -> str:
        if self._failure is not None:
            raise self._failure
        where = _part_where(part)
        check_part_shape(part, where)
        shape = (part.seq_len, part.message_len, part.checksum, len(part.data))
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            seq_len, message_len, checksum, fragment_len = self._shape
            raise QRDecodeError(
                f"part of another message: seq_len {part.seq_len}, message length "
                f"{part.message_len}, checksum {part.checksum:08x}, fragment {len(part.data)} "
                f"byte(s); expected {seq_len}, {message_len}, {checksum:08x}, {fragment_len}",
                where=where, hint="show one message at a time, or restart the scan")
        return where

    def _finish(self, fragments: list[int], where: str) -> None:
        seq_len, message_len, checksum, fragment_len = self._shape
        joined = b"".join(f.to_bytes(fragment_len, "big") for f in fragments)
        message = joined[:message_len]
        if any(joined[message_len:]):
            self._failure = QRDecodeError("padding after the message is not zero", where=where,
                                          hint="a part was corrupted; restart the scan")
        elif crc32(message) != checksum:
            self._failure = QRDecodeError(
                f"decoded message checksum {crc32(message):08x} does not match {checksum:08x}",
                where=where, hint="a part was corrupted; restart the scan")
        if self._failure is not None:
            raise self._failure
        self._message = message

    @property
    def is_complete(self) -> bool:
        return self._message is not None

    @property
    def message(self) -> bytes | None:
        return self._message

    @property
    def seq_len(self) -> int:
        return self._shape[0] if self._shape else 0


# --- Gaussian elimination decoder ---------------------------------------------------------

class FountainDecoder(_Decoder):
    """Incremental Gaussian elimination over GF(2); completes at full rank.

    Rows are kept in echelon form keyed by their lowest index (pivot); a new part is
    reduced by every pivot it contains. A part that reduces to an empty index set is
    redundant, unless its data does not reduce to zero: then it contradicts earlier parts
    and is refused. A refused part leaves the decoder unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rows: dict[int, tuple[int, int]] = {}

    def receive(self, part: FountainPart) -> bool:
        """Take one part; True when it raised the rank. Raises QRDecodeError on a bad part."""
        where = self._admit(part)
        if self._message is not None:
            self.parts_seen += 1
            return False
        mask = 0
        for i in part.indexes:
            mask |= 1 << i
        data = int.from_bytes(part.data, "big")
        rows = self._rows
        pending = mask
        while pending:
            low = pending & -pending
            row = rows.get(low.bit_length() - 1)
            if row is None:
                pending ^= low
            else:
                mask ^= row[0]
                data ^= row[1]
                pending = mask & ~((low << 1) - 1)
        if mask == 0:
            if data:
                raise QRDecodeError(
                    "part contradicts the parts received before it (corrupted or forged)",
                    where=where, hint="restart the scan")
            self.parts_seen += 1
            return False
        self.parts_seen += 1
        low = mask & -mask
        rows[low.bit_length() - 1] = (mask, data)
        self.parts_useful += 1
        if len(rows) == self.seq_len:
            self._solve(where)
        return True

    def _solve(self, where: str) -> None:
        solved: dict[int, int] = {}
        for pivot in sorted(self._rows, reverse=True):
            mask, data = self._rows[pivot]
            rest = mask ^ (1 << pivot)
            while rest:
                low = rest & -rest
                data ^= solved[low.bit_length() - 1]
                rest ^= low
            solved[pivot] = data
        self._finish([solved[i] for i in range(self.seq_len)], where)

    @property
    def rank(self) -> int:
        return len(self._rows)

    @property
    def progress(self) -> Progress:
        return Progress(self.rank, self.seq_len, self.parts_seen, self.parts_useful)
