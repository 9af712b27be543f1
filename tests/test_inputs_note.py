"""The images a refinement used are stored as data (core) and worded by bot."""

from __future__ import annotations

import json

from bot import messages
from core.ports import InputsNote


def test_stored_as_json_and_read_back() -> None:
    note = InputsNote(("a.png", "b.png"), ("old.png",), "mask.png", has_base=True, limit=5)
    stored = note.to_stored()
    assert stored is not None and json.loads(stored)["used"] == ["a.png", "b.png"]
    assert InputsNote.from_stored(stored) == note
    assert InputsNote().to_stored() is None and InputsNote.from_stored(None) is None


def test_bot_words_it_and_keeps_an_older_rows_sentence() -> None:
    note = InputsNote(("a.png",), ("old.png",), "hole.png", has_base=True, limit=5)
    assert messages.inputs_note(note) == (
        "References: a.png; mask: hole.png (transparent area repainted); "
        "not used (5 images at most, base included, newest kept): old.png."
    )
    legacy = InputsNote.from_stored("References: x.png.")
    assert legacy is not None and messages.inputs_note(legacy) == "References: x.png."
