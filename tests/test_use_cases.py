"""Use cases of sessions, refinement and history on a real SQLite file, and a button
listener called directly with a fake ack (no HTTP, no Slack)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import messages
from bot.listeners import actions, review, styles
from core import db, history, refinement, sessions
from core.db.views import get_view
from core.flags import Params
from core.sessions import ActionRefused, Conversation, Refusal

HERE = Conversation("T0TEAM", "C0HERE")


@pytest.fixture
async def sm(migrated_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(migrated_url)
    yield db.sessionmaker(engine)
    await engine.dispose()


async def _start(sm: async_sessionmaker[AsyncSession]) -> int:
    return await sessions.start(
        sm,
        team_id=HERE.team_id,
        channel_id=HERE.channel_id,
        user_id="U1",
        prompt="a lighthouse",
        params=Params(aspect_ratio="3:2", seed=7, negative_prompt="fog"),
        provider="local",
        model=None,
        response_url=None,
    )


def test_params_round_trip_through_the_stored_json() -> None:
    params = Params(aspect_ratio="3:2", n=2, seed=42, negative_prompt="cars", quality="high")
    stored = params.to_stored()
    assert "seed" not in stored
    assert Params.from_stored(stored, 42) == params
    assert Params.from_stored({**stored, "retired_flag": 1}, None) == Params(
        aspect_ratio="3:2", n=2, negative_prompt="cars", quality="high"
    )


@pytest.mark.parametrize(
    "where",
    [Conversation("T0TEAM", "C0OTHER"), Conversation("T0OTHER", "C0HERE"), Conversation("", "")],
)
async def test_actions_from_another_conversation_are_refused(
    sm: async_sessionmaker[AsyncSession], where: Conversation
) -> None:
    v1 = await _start(sm)
    attempts = [
        sessions.regenerate(sm, v1, "U2", where),
        sessions.approve(sm, v1, 0, "U2", where),
        sessions.cancel(sm, v1, "U1", where),
        refinement.pick_base(sm, v1, 0, where),
        history.versions(sm, v1, where),
    ]
    for attempt in attempts:
        with pytest.raises(ActionRefused) as refused:
            await attempt
        assert refused.value.reason is Refusal.WRONG_CONVERSATION
    found = await history.versions(sm, v1, HERE)
    assert [v.version for v in found.versions] == [1]
    assert (await sessions.cancel(sm, v1, "U1", HERE)).running  # untouched until now


async def test_regenerate_keeps_the_request_and_ignores_a_double_click(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    v1 = await _start(sm)
    v2 = await sessions.regenerate(sm, v1, "U2", HERE)
    with pytest.raises(ActionRefused) as refused:
        await sessions.regenerate(sm, v1, "U2", HERE)
    assert refused.value.reason is Refusal.DOUBLE_CLICK
    v3 = await sessions.regenerate(sm, v1, "U3", HERE)  # someone else: a new version
    found = await history.versions(sm, v1, HERE)
    assert [(v.generation_id, v.kind) for v in found.versions] == [
        (v1, "imagine"),
        (v2, "regenerate"),
        (v3, "regenerate"),
    ]
    view = await get_view(sm, v2)
    assert (view.ask.params.aspect_ratio, view.ask.params.negative_prompt) == ("3:2", "fog")
    assert view.ask.params.seed != 7


async def test_a_missing_generation_is_gone(sm: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(ActionRefused) as refused:
        await sessions.regenerate(sm, 12345, "U2", HERE)
    assert refused.value.reason is Refusal.GONE


async def test_size_mask_sizes_to_the_base_else_to_the_generation() -> None:
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 255))
    img.paste((0, 0, 0, 0), (0, 0, 5, 5))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    mask = buf.getvalue()
    to_base = await refinement.size_mask(mask, "m.png", base=(20, 30), own=(40, 40))
    to_own = await refinement.size_mask(mask, "m.png", base=None, own=(40, 40))
    assert (to_base.width, to_base.height, to_base.scaled_from) == (20, 30, (10, 10))
    assert (to_own.width, to_own.height) == (40, 40)


async def test_a_button_listener_acks_first_and_answers_garbage_privately() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    async def ack(**kwargs: Any) -> None:
        calls.append(("ack", kwargs))

    async def respond(**kwargs: Any) -> None:
        calls.append(("respond", kwargs))

    body = {"channel": {"id": "C0HERE"}, "team": {"id": "T0TEAM"}}  # no user
    for listener in (review.approve, actions.regenerate, actions.history):
        calls.clear()
        # An empty context: a listener that reached for the runtime would raise KeyError.
        await listener(ack=ack, body=body, action={"value": "1"}, respond=respond, context={})
        assert [name for name, _ in calls] == ["ack", "respond"]
        assert calls[1][1]["text"] == messages.STALE_BUTTON
        assert calls[1][1]["response_type"] == "ephemeral"


async def test_a_modal_opening_click_needs_its_trigger_id() -> None:
    """Request changes and Save style… open a modal with the click's trigger_id (views.open):
    without one, or with the menu's choice missing, the clicker is told privately and
    nothing else happens (the runtime is None: touching it would raise)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    async def ack(**kwargs: Any) -> None:
        calls.append(("ack", kwargs))

    async def respond(**kwargs: Any) -> None:
        calls.append(("respond", kwargs))

    body: dict[str, Any] = {
        "user": {"id": "U1"},
        "channel": {"id": "C0HERE"},
        "team": {"id": "T0TEAM"},
    }
    menu = {"selected_option": {"value": "1:0"}}
    with_trigger = {**body, "trigger_id": "1.2.abc"}
    cases = [
        (review.request_changes, body, {"value": "1:0"}),  # no trigger_id
        (styles.save_style_chosen, body, menu),  # no trigger_id
        (styles.save_style_chosen, with_trigger, {"value": "1:0"}),  # a menu: no option
    ]
    for listener, payload, action in cases:
        calls.clear()
        context = {"runtime": None}
        await listener(ack=ack, body=payload, action=action, respond=respond, context=context)
        assert [name for name, _ in calls] == ["ack", "respond"]
        assert calls[1][1]["text"] == messages.STALE_BUTTON
        assert calls[1][1]["response_type"] == "ephemeral"
