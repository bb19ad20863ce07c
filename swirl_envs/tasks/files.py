"""Find and read dataset files as they are published, with errors that say where and what.

A dataset is read from, in order: the ``data_path`` the user gave (a file, or the
folder that holds the split's original file); the same file under the data folder
(``$SWIRL_DATA_DIR/<dataset>/``, default ``~/.cache/swirl/data/<dataset>/``); the
dataset's copy on the Hugging Face Hub, through ``datasets``, when the Hub is
reachable. When none of these works, ``DatasetNotFoundError`` says which file to
get, where from, and where to put it.

Files are JSON (an array of records, or an object whose ``"data"`` is one, as
BeerQA ships) or JSON Lines. A record that cannot be read or converted raises
``DataFormatError`` naming the file, the line (JSON Lines) or record number (JSON),
and what is wrong; with ``on_error="skip"`` such records are dropped instead and
their count is logged.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from swirl_envs.task import Task
from swirl_envs.tasks.json_stream import (
    CHUNK_CHARS,
    JSONStreamError,
    NotAnArrayError,
    iter_json_array,
)

OnError = Literal["raise", "skip"]
"""What a loader does with a bad record: stop with an error, or drop it and log a count."""

logger = logging.getLogger("swirl_envs.tasks")

_DEFAULT_DATA_DIR = "~/.cache/swirl/data"
_HUB_TIMEOUT_S = 3.0
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class DataFormatError(ValueError):
    """A dataset file, or one record in it, is not in the dataset's published format."""


class DatasetNotFoundError(FileNotFoundError):
    """Neither a local file nor the Hub copy of a dataset could be read."""


class RecordError(ValueError):
    """What is wrong with one record; the reader adds the file and line."""


@dataclass(frozen=True)
class HubDataset:
    """Where a dataset lives on the Hugging Face Hub and how its rows map to the original records.

    Attributes:
        path: Repository id, e.g. ``"openai/gsm8k"``.
        config: Configuration name, if the repository has several.
        splits: Our split name -> the Hub's split name, or (with ``original_files``)
            the path of the split's original file in the repository.
        original_files: Read the original files kept in the repository instead of
            the Hub's processed splits.
        adapt: Turns one Hub row into a record of the original format (the Hub copy of
            HotPotQA, for example, stores ``context`` as columns, not pairs).
    """

    path: str
    splits: Mapping[str, str]
    config: str | None = None
    original_files: bool = False
    adapt: Callable[[dict[str, Any]], Any] | None = None


@dataclass(frozen=True)
class DatasetFiles:
    """The published files of a dataset: names per split, where to get them, the Hub copy.

    Attributes:
        name: Display name (``"HotPotQA"``).
        folder: Sub-folder of the data folder that holds the files (``"hotpotqa"``).
        files: Split -> the file's original name.
        url: Where a user downloads the files.
        hub: The dataset's Hub copy, if there is one.
        notes: Extra advice for the not-found error (e.g. which variant to pick).
    """

    name: str
    folder: str
    files: Mapping[str, str]
    url: str
    hub: HubDataset | None = None
    notes: str = ""

    def check_split(self, split: str) -> str:
        """Return ``split`` if the dataset has it, else raise a ``ValueError`` naming the splits."""
        if split not in self.files:
            raise ValueError(
                f"{self.name} has no split {split!r}; choose one of {sorted(self.files)}."
            )
        return split


@dataclass(frozen=True)
class Record:
    """One raw record and where it came from; ``error`` is set when it could not be parsed."""

    where: str
    data: Any = None
    error: str | None = None


def data_dir() -> Path:
    """The folder searched for dataset files when no ``data_path`` is given."""
    return Path(os.environ.get("SWIRL_DATA_DIR") or _DEFAULT_DATA_DIR).expanduser()


def load_tasks(
    dataset: DatasetFiles,
    convert: Callable[[Any, int], Task],
    *,
    data_path: str | os.PathLike[str] | None,
    split: str,
    on_error: OnError = "raise",
) -> list[Task]:
    """Read ``dataset``'s ``split`` and convert each record with ``convert(record, index)``.

    Args:
        dataset: The dataset's files and Hub copy.
        convert: Builds one ``Task`` from one raw record and its 0-based position;
            raises ``RecordError`` for a record it cannot use.
        data_path: A file, or a folder holding the split's original file; ``None``
            looks in the data folder, then on the Hub.
        split: Which split (chooses the file name and the Hub split).
        on_error: ``"raise"`` stops at the first bad record; ``"skip"`` drops bad
            records and logs how many.

    Raises:
        DatasetNotFoundError: No readable source; the message says which file to get.
        DataFormatError: A record is malformed (with ``on_error="raise"``), the file
            is not JSON at all, or no record in it is usable.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    dataset.check_split(split)
    source, records = _open_source(dataset, data_path, split)
    tasks: list[Task] = []
    skipped: list[str] = []
    for index, record in enumerate(records):
        try:
            if record.error is not None:
                raise RecordError(record.error)
            tasks.append(convert(record.data, index))
        except RecordError as error:
            message = f"{source}, {record.where}: {error}"
            if on_error == "raise":
                raise DataFormatError(message) from None
            skipped.append(message)
    if skipped:
        logger.warning(
            "Skipped %d of %d records of %s (on_error='skip'); the first: %s",
            len(skipped),
            len(skipped) + len(tasks),
            source,
            skipped[0],
        )
    if not tasks:
        raise DataFormatError(f"{source}: no usable {dataset.name} records.")
    return tasks


def read_records(path: Path, *, chunk_chars: int = CHUNK_CHARS) -> Iterator[Record]:
    """Yield the records of a JSON or JSON Lines file, each with its line or record number.

    A JSON file is an array of records or an object with a ``"data"`` array; either is
    read one record at a time (``iter_json_array``), so memory holds one record, not the
    file (HotPotQA's train file is one 540 MB line). A JSON Lines file has one record per
    line; a line that is not JSON becomes a ``Record`` with ``error`` set, so the caller
    decides whether to stop or skip. A JSON file that does not parse cannot be split into
    records and raises ``DataFormatError`` when the reader reaches the fault.
    """
    try:
        with path.open("r", encoding="utf-8") as handle:
            start = handle.read(1)
            while start.isspace():
                start = handle.read(1)
            handle.seek(0)
            if start in ("[", "{"):
                elements = iter_json_array(handle, str(path), key="data", chunk_chars=chunk_chars)
                try:
                    for number, data in enumerate(elements, start=1):
                        yield Record(f"record {number}", data)
                    return
                except NotAnArrayError:  # no element was yielded: an object without "data"
                    handle.seek(0)
                except JSONStreamError as error:
                    raise DataFormatError(str(error)) from None
                yield from _object_records(path, handle)
                return
            yield from _json_lines(handle)
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text ({error.reason}).") from None


def _object_records(path: Path, handle: Any) -> Iterator[Record]:
    """JSON Lines whose first line is an object, or one record spread over several lines."""
    first = next(line for line in handle if line.strip())
    try:
        json.loads(first)
    except ValueError:  # an object spread over several lines: a single record
        handle.seek(0)
        yield Record("record 1", _parse_document(path, handle))
        return
    handle.seek(0)
    yield from _json_lines(handle)


def _parse_document(path: Path, handle: Any) -> Any:
    try:
        return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataFormatError(
            f"{path}, line {error.lineno} column {error.colno}: not valid JSON ({error.msg})."
        ) from None


def _json_lines(handle: Any) -> Iterator[Record]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield Record(f"line {number}", json.loads(line))
        except json.JSONDecodeError as error:
            yield Record(
                f"line {number}", error=f"not valid JSON ({error.msg}: column {error.colno})"
            )


def json_type(value: Any) -> str:
    """Name a JSON value's type the way the data's documentation does."""
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _open_source(
    dataset: DatasetFiles, data_path: str | os.PathLike[str] | None, split: str
) -> tuple[str, Iterator[Record]]:
    file_name = dataset.files[split]
    if data_path is not None:
        path = Path(data_path).expanduser()
        if path.is_dir():
            path = path / file_name
        if not path.is_file():
            raise DatasetNotFoundError(_not_found(dataset, split, f"{path} does not exist."))
        return str(path), read_records(path)
    default = data_dir() / dataset.folder / file_name
    if default.is_file():
        return str(default), read_records(default)
    if dataset.hub is None:
        raise DatasetNotFoundError(_not_found(dataset, split, "No data_path was given."))
    if not hub_reachable():
        reason = (
            f"No data_path was given and the Hugging Face Hub ({_hub_endpoint()}) is not reachable."
        )
        raise DatasetNotFoundError(_not_found(dataset, split, reason))
    try:
        rows = _hub_rows(dataset.hub, split)
    except Exception as error:  # any failure of the optional Hub path ends in the one error
        failure = f"{type(error).__name__}: {error}"
        reason = f"Loading {dataset.hub.path} from the Hugging Face Hub failed ({failure})."
        raise DatasetNotFoundError(_not_found(dataset, split, reason)) from error
    return f"Hugging Face dataset {dataset.hub.path} ({split})", rows


def _not_found(dataset: DatasetFiles, split: str, reason: str) -> str:
    file_name = dataset.files[split]
    default = data_dir() / dataset.folder / file_name
    hub = (
        f" With network access the Hub copy ({dataset.hub.path}) is used when no file is found."
        if dataset.hub
        else f" {dataset.name} is not on the Hugging Face Hub, so the file is needed."
    )
    notes = f" {dataset.notes}" if dataset.notes else ""
    return (
        f"{dataset.name} {split} data not found. {reason} Get {file_name} from {dataset.url} "
        f"and pass data_path='/path/to/{file_name}' (the file or its folder), or put it at "
        f"{default} (the data folder is set by SWIRL_DATA_DIR).{hub}{notes}"
    )


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def hub_reachable(timeout: float = _HUB_TIMEOUT_S) -> bool:
    """True when the Hub can be tried: offline mode (cache only), a proxy, or a quick TCP connect.

    ``datasets`` retries an unreachable Hub for about half a minute before failing;
    this check makes a machine without network fail at once with the useful error.
    """
    if any(
        os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")
        for name in _OFFLINE_VARIABLES
    ):
        return True
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return True
    url = urlparse(_hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_rows(hub: HubDataset, split: str) -> Iterator[Record]:
    import datasets  # optional and heavy: only this fallback needs it

    if hub.original_files:
        rows = datasets.load_dataset(hub.path, data_files={"rows": hub.splits[split]}, split="rows")
    else:
        rows = datasets.load_dataset(hub.path, hub.config, split=hub.splits[split])

    def records() -> Iterator[Record]:
        for number, row in enumerate(rows, start=1):
            yield Record(f"row {number}", hub.adapt(row) if hub.adapt else row)

    return records()
