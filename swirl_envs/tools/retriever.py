"""The retriever interface: rank the passages of a corpus for a text query.

``SearchTool`` talks to a ``Retriever``; ``BM25Index`` is the one shipped. A
retriever that persists names its format in the saved manifest, and
``Retriever.load`` opens any saved index by that name.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from swirl_envs.task import Passage
from swirl_envs.tools.index_store import IndexFormatError, read_manifest


@dataclass(frozen=True)
class Hit:
    """One search result: the passage, its score, and its position in the corpus."""

    passage: Passage
    score: float
    index: int


class Retriever(ABC):
    """Anything that ranks the passages of a corpus for a text query.

    Subclasses that persist set ``format``; ``Retriever.load`` then opens any saved
    index by the format its manifest names.
    """

    format: ClassVar[str] = ""
    _formats: ClassVar[dict[str, type[Retriever]]] = {}

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if cls.format:
            Retriever._formats[cls.format] = cls

    @abstractmethod
    def search(self, query: str, k: int) -> list[Hit]:
        """Return up to ``k`` passages that match ``query``, best first."""

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Search several queries at once (one list of hits per query).

        Identical queries are searched once: many envs on the same task often
        send the same query in the same round.
        """
        unique = {query: self.search(query, k) for query in dict.fromkeys(queries)}
        return [list(unique[query]) for query in queries]

    def title_hits(self, query: str) -> list[Hit]:
        """Passages whose normalised title equals the normalised query, best first.

        The default finds none; a retriever that knows its titles overrides it.
        """
        return []

    @classmethod
    def load(cls, directory: str | os.PathLike, *, mmap: bool = True, **options: Any) -> Retriever:
        """Open a saved index; its manifest names the retriever class that reads it.

        Args:
            directory: What ``save`` wrote.
            mmap: Memory-map the arrays (fast to open, shared between processes).
            **options: Passed to the class's loader (e.g. ``tokenizer``, ``verify``).

        Raises:
            IndexFormatError: The directory is not a saved index of this kind, or is corrupt.
        """
        manifest = read_manifest(directory)
        name = manifest.get("format", "")
        target = Retriever._formats.get(name)
        if target is None:
            raise IndexFormatError(
                f"{directory} holds a {name!r} index, which no imported retriever reads."
            )
        if not issubclass(target, cls):
            raise IndexFormatError(f"{directory} holds a {name!r} index, not a {cls.__name__}.")
        return target._from_directory(Path(directory), manifest, mmap=mmap, **options)

    @classmethod
    def _from_directory(
        cls, directory: Path, manifest: dict[str, Any], *, mmap: bool, **options: Any
    ) -> Retriever:
        raise NotImplementedError(f"{cls.__name__} cannot be loaded from disk.")
