"""For comparison only: the reference implementation's peeling decoder, and a simulation of a
receiver joining a fountain stream at a random point, both decoders fed the same frames.

coldsign decodes with `fountain.FountainDecoder` (Gaussian elimination); the benchmarks and
tests use this module to show what that saves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from coldsign.qr.fountain import (MAX_FRAGMENTS, FountainDecoder, FountainEncoder, FountainPart, Progress,
                                  _Decoder)
# --- the reference's peeling decoder (for comparison) -------------------------------------

class PeelingDecoder(_Decoder):
    """The reference algorithm: known fragments peel mixed parts down until all are known.

    Finishes no earlier than :class:`FountainDecoder` on the same parts (it can only solve
    what full rank allows). Kept for benchmarks, not for production decoding.
    """

    def __init__(self) -> None:
        super().__init__()
        self._simple: dict[int, int] = {}
        self._mixed: dict[frozenset[int], int] = {}
        self._mixed_with: dict[int, set[frozenset[int]]] = {}  # fragment -> mixed parts

    def receive(self, part: FountainPart) -> bool:
        where = self._admit(part)
        self.parts_seen += 1
        if self._message is not None:
            return False
        known_before = len(self._simple) + len(self._mixed)
        queue = [(part.indexes, int.from_bytes(part.data, "big"))]
        while queue and self._message is None:
            indexes, data = queue.pop(0)
            if len(indexes) == 1:
                self._take_simple(next(iter(indexes)), data, queue, where)
            else:
                self._take_mixed(indexes, data, queue)
        useful = self._message is not None or len(self._simple) + len(self._mixed) > known_before
        self.parts_useful += useful
        return useful

    def _take_simple(self, index: int, data: int, queue: list, where: str) -> None:
        if index in self._simple:
            return
        self._simple[index] = data
        if len(self._simple) == self.seq_len:
            self._finish([self._simple[i] for i in range(self.seq_len)], where)
            return
        for indexes in self._mixed_with.pop(index, set()):
            mixed_data = self._forget_mixed(indexes)
            reduced = indexes - {index}
            if len(reduced) == 1:
                queue.append((reduced, mixed_data ^ data))
            else:
                self._keep_mixed(reduced, mixed_data ^ data)

    def _subsets_of(self, indexes: frozenset[int]) -> list[frozenset[int]]:
        """Mixed parts that are strict subsets of ``indexes``, found through the index."""
        hits: dict[frozenset[int], int] = {}
        for i in indexes:
            for m in self._mixed_with.get(i, ()):
                hits[m] = hits.get(m, 0) + 1
        return sorted((m for m, n in hits.items() if n == len(m) < len(indexes)), key=sorted)

    def _keep_mixed(self, indexes: frozenset[int], data: int) -> None:
        if indexes not in self._mixed:
            self._mixed[indexes] = data
            for i in indexes:
                self._mixed_with.setdefault(i, set()).add(indexes)

    def _forget_mixed(self, indexes: frozenset[int]) -> int:
        for i in indexes:
            holders = self._mixed_with.get(i)
            if holders is not None:
                holders.discard(indexes)
        return self._mixed.pop(indexes)

    def _take_mixed(self, indexes: frozenset[int], data: int, queue: list) -> None:
        if indexes in self._mixed:
            return
        for i in indexes.intersection(self._simple):
            data ^= self._simple[i]
        indexes = indexes.difference(self._simple)
        for other in self._subsets_of(indexes):
            if other < indexes:  # indexes shrink as they are reduced: check again
                indexes = indexes - other
                data ^= self._mixed[other]
        if len(indexes) == 1:
            queue.append((indexes, data))
        elif len(indexes) > 1:
            # As the reference: the new part also reduces the mixed parts that contain it.
            anchor = min(indexes)
            for superset in [m for m in self._mixed_with.get(anchor, ()) if indexes < m]:
                reduced = superset - indexes
                reduced_data = self._forget_mixed(superset) ^ data
                if len(reduced) == 1:
                    queue.append((reduced, reduced_data))
                else:
                    self._keep_mixed(reduced, reduced_data)
            self._keep_mixed(indexes, data)

    @property
    def progress(self) -> Progress:
        return Progress(len(self._simple), self.seq_len, self.parts_seen, self.parts_useful)


# --- simulation: frames from joining a stream until decoded --------------------------------

@dataclass(frozen=True)
class JoinSimulation:
    """Frames shown from the moment a receiver joined until each decoder completed."""

    fragments: int
    loss: float
    seed: int
    first_seq_num: int
    gaussian_frames: int
    peeling_frames: int


def simulate_join(fragments: int, loss: float, seed: int, fragment_len: int = 4,
                  join_window: int | None = None, peeling: bool = True) -> JoinSimulation:
    """Simulate a receiver joining an endless part stream of ``fragments`` fragments at a
    random part in ``1..join_window`` (default ``2 * fragments``), losing each frame with
    probability ``loss``; both decoders see the same frames. Replayable from ``seed``.

    The peeling decoder costs O(mixed parts) per part, like the reference; pass
    ``peeling=False`` for large ``fragments`` (``peeling_frames`` is then 0)."""
    if not 0 <= loss < 1:
        raise ValueError("loss must be in [0, 1)")
    if not 1 <= fragments <= MAX_FRAGMENTS:
        raise ValueError(f"fragments must be in 1..{MAX_FRAGMENTS}")
    rng = random.Random(seed)
    message = rng.randbytes(fragments * fragment_len)
    encoder = FountainEncoder(message, fragment_len, min_fragment_len=1)
    first = rng.randint(1, join_window or 2 * fragments)
    decoders = {"gaussian": FountainDecoder()}
    if peeling:
        decoders["peeling"] = PeelingDecoder()
    done: dict[str, int] = {}
    frames, seq_num = 0, first
    # Each frame arrives with probability 1 - loss; the cap is a safety net against a bug.
    max_frames = int(100 * (fragments + 10) / (1 - loss))
    while len(done) < len(decoders):
        frames += 1
        if frames > max_frames:
            raise RuntimeError(f"no decode after {max_frames} frames (seed {seed})")
        part = encoder.part(seq_num)
        seq_num += 1
        if rng.random() < loss:
            continue
        for name, decoder in decoders.items():
            if name not in done:
                decoder.receive(part)
                if decoder.is_complete:
                    if decoder.message != message:
                        raise RuntimeError(f"{name} decoder returned another message")
                    done[name] = frames
    return JoinSimulation(fragments, loss, seed, first, done["gaussian"], done.get("peeling", 0))
