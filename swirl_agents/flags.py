"""Command-line flags from a dataclass: the one way commands and scripts declare their arguments.

Each field is one ``--flag`` (underscores become dashes) with the field's default and
the docstring written under the field as its help, so a setting is declared, typed,
defaulted and documented once::

    @dataclass
    class Args:
        steps: int = 5
        \"\"\"Timed optimizer steps.\"\"\"

    parser = argparse.ArgumentParser()
    add_flags(parser, Args)
    args = from_flags(Args, parser.parse_args())
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls``, read from its source."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: Iterable[str] = (),
    aliases: Mapping[str, Iterable[str]] | None = None,
    required: Iterable[str] = (),
) -> None:
    """Add one flag per field of dataclass ``cls`` to ``parser``.

    Args:
        parser: The parser (or argument group).
        cls: The dataclass.
        skip: Fields that get no flag (they keep their defaults).
        aliases: Extra flag spellings per field (``{"out_dir": ["--out"]}``).
        required: Fields whose flag must be given.
    """
    skip, required, aliases = set(skip), set(required), dict(aliases or {})
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if item.name in skip:
            continue
        default = _default(item)
        flags = ["--" + item.name.replace("_", "-"), *aliases.get(item.name, ())]
        shown = "" if item.name in required else f" (default: {default})"
        help_text = f"{docs.get(item.name, '')}{shown}".replace("%", "%%")
        parser.add_argument(
            *flags,
            dest=item.name,
            help=help_text,
            required=item.name in required,
            **_kind(hints[item.name], default),
        )


def from_flags(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """An instance of ``cls`` from the parsed flags (fields without one keep their defaults)."""
    names = [item.name for item in dataclasses.fields(cls) if hasattr(args, item.name)]
    return cls(**{name: getattr(args, name) for name in names}, **values)


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object (``--env-kwargs '{"split": "test"}'``)."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def _default(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return None


def _kind(hint: Any, default: Any) -> dict[str, Any]:
    """The ``add_argument`` keywords that parse a value of type ``hint``."""
    options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = options[0] if len(options) == 1 else str
    origin = typing.get_origin(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction, "default": default}
    if origin in (tuple, list):
        element = typing.get_args(hint)[0]
        return {"nargs": "+", "type": element if element in (int, float) else str,
                "default": default}  # fmt: skip
    if origin is dict or hint is dict:
        return {"type": json_object, "default": default}
    return {"type": hint if hint in (int, float) else str, "default": default}
