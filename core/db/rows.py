"""Plain data from ORM rows: one rule for copying the columns a dataclass names."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_row(cls: type[T], row: object, **given: Any) -> T:
    """An instance of the dataclass `cls`: each field not in `given` is `row`'s attribute of
    the same name (a column), and the `given` values fill the rest.

    Raises AttributeError when `row` lacks a field that is not given (a renamed column
    shows up at once, not as a silent default)."""
    names = [f.name for f in fields(cls) if f.init and f.name not in given]  # type: ignore[arg-type]
    return cls(**{name: getattr(row, name) for name in names}, **given)
