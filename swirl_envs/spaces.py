"""A text space that holds any Unicode string.

Gymnasium's ``Text`` space has a closed character set (ASCII letters and digits by
default), so real questions ("Café", "1–2", CJK names) fall outside it and the
env checker warns. ``TranscriptSpace`` keeps ``Text``'s machinery (sampling,
batching, vector envs) but contains every ``str`` up to ``max_length`` characters.
Shared memory for ``AsyncVectorEnv`` stores Unicode code points, so any character
survives the trip between processes.
"""

from __future__ import annotations

import multiprocessing as mp
import string
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

_SAMPLE_CHARSET = string.ascii_letters + string.digits + " <>/_-.,?'\n"
_PAD = -1


class TranscriptSpace(Text):
    """Any Unicode string of at most ``max_length`` characters.

    ``sample()`` draws from a small printable charset (it exists for checkers and
    random agents); ``contains()`` accepts every character.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        """Return True for any ``str`` whose length is within bounds."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TranscriptSpace({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TranscriptSpace)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    def __hash__(self) -> int:
        return hash((TranscriptSpace, self.min_length, self.max_length))


@create_shared_memory.register(TranscriptSpace)
def _create_transcript_memory(space: TranscriptSpace, n: int = 1, ctx: ModuleType = mp) -> Any:
    return ctx.Array(np.dtype(np.int32).char, n * space.max_length)


class SharedTranscripts(Sequence):
    """A live view of the transcripts in an ``AsyncVectorEnv``'s shared memory.

    ``AsyncVectorEnv`` reads shared memory once, when it is built, and relies on the
    result being a view (as numpy arrays are); a tuple of strings would go stale.
    This view decodes the buffer on access, and ``deepcopy`` (what the vector env
    returns by default) takes a tuple snapshot.
    """

    def __init__(self, shared_memory: Any, n: int, max_length: int):
        self._memory, self._n, self._max_length = shared_memory, n, max_length

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        return self._snapshot()[index]

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __repr__(self) -> str:
        return f"SharedTranscripts({self._snapshot()!r})"

    def __deepcopy__(self, memo: dict) -> tuple[str, ...]:
        return self._snapshot()

    def _snapshot(self) -> tuple[str, ...]:
        data = np.frombuffer(self._memory.get_obj(), dtype=np.int32)
        rows = data.reshape((self._n, self._max_length))
        return tuple("".join(map(chr, row[row != _PAD])) for row in rows)


@read_from_shared_memory.register(TranscriptSpace)
def _read_transcript_memory(
    space: TranscriptSpace, shared_memory: Any, n: int = 1
) -> SharedTranscripts:
    return SharedTranscripts(shared_memory, n, space.max_length)


@write_to_shared_memory.register(TranscriptSpace)
def _write_transcript_memory(
    space: TranscriptSpace, index: int, value: str, shared_memory: Any
) -> None:
    size = space.max_length
    destination = np.frombuffer(shared_memory.get_obj(), dtype=np.int32)
    row = np.full(size, _PAD, dtype=np.int32)
    codes = np.frombuffer(value.encode("utf-32-le", "surrogatepass"), dtype=np.int32)
    row[: len(codes)] = codes
    np.copyto(destination[index * size : (index + 1) * size], row)
