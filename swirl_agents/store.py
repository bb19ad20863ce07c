"""A crash-safe JSONL store of trajectories: one episode per line, appended atomically.

Why it survives a kill: a line is written with a single ``write()`` on a file opened
with ``O_APPEND``, then flushed to disk with ``fsync``; a process killed mid-run
leaves whole lines, at worst followed by one torn line (a power cut or a line
longer than one write). Opening the store again cuts a torn last line away with a
warning, and the set of ``(task_id, sample)`` keys already on disk tells a
restarted run what to skip, so the finished file holds exactly the episodes of an
uninterrupted run, each once.

Each line is ``Trajectory.to_dict()`` as JSON, including its ``schema_version``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from swirl_agents.trajectory import Trajectory

try:  # advisory locking is POSIX-only; elsewhere two writers are simply not detected
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

Key = tuple[str, int]


class TornLineWarning(UserWarning):
    """A store ended in a partial line (left by a crash) that was removed."""


def load_trajectories(path: str | os.PathLike) -> Iterator[Trajectory]:
    """Yield every trajectory stored in ``path``, in file order.

    Raises:
        ValueError: A line is not a valid trajectory record; the message names the
            file and the 1-based line number. (A torn *last* line is reported the
            same way here: open the file with ``TrajectoryStore`` to repair it.)
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield _decode(raw, path, number)


def load_in_task_order(path: str | os.PathLike, *, sample: int | None = None) -> list[Trajectory]:
    """A trajectory file, whole (or one ``sample`` index of it), sorted by ``(task_id, sample)``.

    A store's line order depends on which episodes finished first; this order does not,
    so it makes a stable training set.
    """
    trajectories = load_trajectories(path)
    if sample is not None:
        trajectories = (t for t in trajectories if t.sample == sample)
    return sorted(trajectories, key=lambda t: t.key)


def write_trajectories(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> Path:
    """Write a whole trajectory file atomically (the store's line format): complete or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        for trajectory in trajectories:
            handle.write(_encode(trajectory))
    os.replace(temporary, path)
    return path


def _decode(raw: bytes, path: str | os.PathLike, number: int) -> Trajectory:
    try:
        return Trajectory.from_dict(json.loads(raw))
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{os.fspath(path)}:{number}: not a valid trajectory: {error}") from None


class TrajectoryStore:
    """An append-only trajectory file that knows which episodes it already holds.

    Opening the store repairs a torn last line (with a ``TornLineWarning``), reads
    the keys of every stored episode, and takes an exclusive advisory lock, so a
    second process writing the same file fails at once instead of interleaving.

    Args:
        path: The JSONL file (created with its parent directories if missing).
        fsync: Force every append to disk before returning (what makes a line
            survive a machine crash, not just a killed process).

    Raises:
        ValueError: A complete line in the middle of the file is corrupt (file:line
            in the message), or two lines hold the same episode.
        RuntimeError: Another process holds the store open.
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = -1
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            self._lock()
            self._repair_torn_tail()
            self._keys = self._read_keys()
        except BaseException:
            self.close()
            raise

    @property
    def keys(self) -> frozenset[Key]:
        """``(task_id, sample)`` of every stored episode."""
        return frozenset(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def append(self, trajectories: Iterable[Trajectory]) -> None:
        """Append episodes, one line each, in one ``write()`` and one ``fsync``.

        Raises:
            ValueError: An episode is already stored or repeats within the batch,
                or a trajectory holds data that JSON cannot represent.
        """
        lines, keys = [], []
        for trajectory in trajectories:
            key = trajectory.key
            if key in self._keys or key in keys:
                raise ValueError(f"{self.path}: episode {key} is already stored.")
            lines.append(_encode(trajectory))
            keys.append(key)
        if not lines:
            return
        _write_all(self._fd, b"".join(lines))
        if self.fsync:
            os.fsync(self._fd)
        self._keys.update(keys)

    def close(self) -> None:
        """Release the lock and close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self):
        if hasattr(self, "_fd"):
            self.close()

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{self.path} is open for writing in another process.") from None

    def _repair_torn_tail(self) -> None:
        """Cut a partial last line (no newline, or not valid JSON) and warn."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        keep = _last_good_end(self._fd, size)
        if keep is None:
            raise ValueError(f"{self.path}: the last line is torn and too long to repair safely.")
        if keep == size:
            return
        os.ftruncate(self._fd, keep)
        warnings.warn(
            f"{self.path}: removed a torn last line ({size - keep} bytes) left by an "
            f"interrupted write; its episode will be generated again.",
            TornLineWarning,
            stacklevel=3,
        )

    def _read_keys(self) -> set[Key]:
        keys: set[Key] = set()
        for number, trajectory in enumerate(load_trajectories(self.path), start=1):
            if trajectory.key in keys:
                raise ValueError(f"{self.path}:{number}: episode {trajectory.key} is stored twice.")
            keys.add(trajectory.key)
        return keys


def _encode(trajectory: Trajectory) -> bytes:
    try:
        text = json.dumps(trajectory.to_dict(), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"episode {trajectory.key} cannot be stored as JSON: {error}") from None
    return (text + "\n").encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _last_good_end(fd: int, size: int) -> int | None:
    """Byte offset just after the last line that ends in a newline and parses as JSON.

    Only the last MiB is read; ``None`` when a torn line is longer than that.
    """
    block = min(size, 1 << 20)
    tail = os.pread(fd, block, size - block)
    if tail.endswith(b"\n"):
        body_end = len(tail) - 1
        start = tail.rfind(b"\n", 0, body_end) + 1
        if start == 0 and block < size:
            return size  # a last line over 1 MiB: leave it to the full load to judge
        try:
            json.loads(tail[start:body_end])
            return size
        except ValueError:
            return size - block + start
    cut = tail.rfind(b"\n")
    if cut < 0 and block < size:
        return None
    return size - block + cut + 1
