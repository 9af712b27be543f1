"""Plain data from ORM rows: one rule for copying the columns a dataclass names, and the one
place an Ask is read from a generation row."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from core.flags import Params
from core.models import GenerationRow
from core.ports import Ask, InputsNote

T = TypeVar("T")


def from_row(cls: type[T], row: object, **given: Any) -> T:
    """An instance of the dataclass `cls`: each field not in `given` is `row`'s attribute of
    the same name (a column), and the `given` values fill the rest.

    Raises AttributeError when `row` lacks a field that is not given (a renamed column
    shows up at once, not as a silent default)."""
    names = [f.name for f in fields(cls) if f.init and f.name not in given]  # type: ignore[arg-type]
    return cls(**{name: getattr(row, name) for name in names}, **given)


def ask_of(row: GenerationRow) -> Ask:
    """What a generation row was asked for (its Params with the seed used)."""
    return Ask(
        row.prompt,
        Params.from_stored(row.params, row.seed),
        row.provider,
        row.model,
        row.instruction,
        row.provider_prompt,
        InputsNote.from_stored(row.inputs_note),
        row.parent_image_id,
    )
