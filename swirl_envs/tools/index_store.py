"""An index on disk: named ``.npy`` arrays plus a JSON manifest that checks them.

Arrays are plain ``.npy`` files so that loading can memory-map them (a
million-passage index opens in milliseconds and shares pages between
processes). The manifest, written last, records a format name and version, the
index's own metadata, and every file's dtype, shape, byte size and SHA-256. A
load checks sizes, shapes and dtypes always and checksums of small files always
(large ones on request), so a truncated, swapped or half-written file is an
``IndexFormatError`` rather than wrong search results.

Strings (terms, titles, texts) are stored as ``StringTable``s: one UTF-8 blob
and an offsets array, both ``.npy``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from swirl_envs.task import Passage

MANIFEST = "manifest.json"
_ALWAYS_CHECKSUM_BYTES = 1 << 20


class IndexFormatError(ValueError):
    """A saved index directory that is missing, corrupt, or not what the caller expects."""


def save_arrays(directory: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` as ``<name>.npy`` files in ``directory`` and a manifest holding ``meta``.

    The manifest is removed first and written last (atomically), so a save that
    stops half-way leaves a directory that fails to load instead of a mix of old
    and new files that loads.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    files = {}
    for name, array in arrays.items():
        path = directory / f"{name}.npy"
        array = np.ascontiguousarray(array)
        np.save(path, array, allow_pickle=False)
        files[name] = {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "bytes": path.stat().st_size,
            "sha256": _sha256(path),
        }
    temporary = directory / f"{MANIFEST}.tmp"
    temporary.write_text(json.dumps({**meta, "files": files}, indent=1), encoding="utf-8")
    os.replace(temporary, directory / MANIFEST)


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and minimally check the manifest of a saved index directory."""
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise IndexFormatError(f"{directory} is not a directory holding a saved index.")
    if not path.is_file():
        raise IndexFormatError(f"{directory} holds no saved index ({MANIFEST} is missing).")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexFormatError(f"{path} is corrupt: {error}.") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IndexFormatError(f"{path} is corrupt: it lists no files.")
    return manifest


def load_arrays(
    directory: str | os.PathLike,
    manifest: Mapping[str, Any],
    *,
    mmap: bool = True,
    verify: bool = False,
) -> dict[str, np.ndarray]:
    """Load every array the manifest lists, checking each against it.

    Args:
        directory: The index directory.
        manifest: Its manifest (from ``read_manifest``).
        mmap: Memory-map the arrays (read-only) instead of reading them into memory.
        verify: Checksum every file, not only the small ones (reads everything once).

    Raises:
        IndexFormatError: A file is missing, truncated, or differs from the manifest.
    """
    directory = Path(directory)
    arrays = {}
    for name, expected in manifest["files"].items():
        path = directory / f"{name}.npy"
        if not path.is_file():
            raise IndexFormatError(f"{path} is missing.")
        size = path.stat().st_size
        if size != expected.get("bytes"):
            raise IndexFormatError(
                f"{path} has {size} bytes but the manifest says {expected.get('bytes')}: "
                "the file is truncated or from another index."
            )
        if (verify or size <= _ALWAYS_CHECKSUM_BYTES) and _sha256(path) != expected.get("sha256"):
            raise IndexFormatError(f"{path} does not match its checksum in the manifest.")
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise IndexFormatError(f"{path} is not a readable array: {error}.") from error
        if array.dtype.str != expected.get("dtype") or list(array.shape) != expected.get("shape"):
            raise IndexFormatError(
                f"{path} holds {array.dtype.str}{list(array.shape)}, but the manifest says "
                f"{expected.get('dtype')}{expected.get('shape')}."
            )
        arrays[name] = array
    return arrays


class StringTable(Sequence[bytes]):
    """Strings as one UTF-8 blob plus offsets: compact, memory-mappable, and searchable.

    When the strings are sorted (by bytes, which is code-point order), ``get``
    and ``span`` binary-search them without building a dict, so a loaded index
    needs no start-up work for its vocabulary.
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob, self.offsets = blob, offsets
        self._bytes, self._starts = memoryview(blob), memoryview(offsets)

    @classmethod
    def from_strings(cls, strings: Sequence[str]) -> StringTable:
        """Pack ``strings`` (in the given order)."""
        encoded = [string.encode("utf-8", "surrogatepass") for string in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(item) for item in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        return bytes(self._bytes[self._starts[index] : self._starts[index + 1]])

    def decoded(self, index: int) -> str:
        """The ``index``-th string, decoded."""
        return self[index].decode("utf-8", "surrogatepass")

    def span(self, key: str) -> tuple[int, int]:
        """The positions ``[lo, hi)`` holding ``key`` in a sorted table."""
        encoded = key.encode("utf-8", "surrogatepass")
        return bisect.bisect_left(self, encoded), bisect.bisect_right(self, encoded)

    def get(self, key: str, default: int = -1) -> int:
        """The position of ``key`` in a sorted table of unique strings, else ``default``.

        Named like ``dict.get`` so that a table and a ``{term: id}`` dict serve alike.
        """
        encoded = key.encode("utf-8", "surrogatepass")
        position = bisect.bisect_left(self, encoded)
        return position if position < len(self) and self[position] == encoded else default

    def check(self, name: str) -> None:
        """Raise ``IndexFormatError`` if the offsets do not fit the blob."""
        if len(self.offsets) == 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.blob):
            raise IndexFormatError(f"The {name} table's offsets do not match its data.")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (np.asarray(self.blob), np.asarray(self.offsets))


class PassageTable(Sequence[Passage]):
    """The passages of a loaded index, decoded on access."""

    def __init__(self, titles: StringTable, texts: StringTable, ids: StringTable):
        self.titles, self.texts, self.ids = titles, texts, ids

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> Passage:  # type: ignore[override]
        return Passage(
            self.titles.decoded(index), self.texts.decoded(index), self.ids.decoded(index)
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
