"""The bot's words for the job engine's codes: failures, waiting reasons, unreachable channels."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot import blocks, messages
from core.flags import Params
from core.ports import Ask, Failure, FailureReason, GenerationView, WaitReason


def _view(**changes: object) -> GenerationView:
    view = GenerationView(
        generation_id=7,
        session_id=1,
        version=3,
        kind="imagine",
        team_id="T0",
        channel_id="C0",
        thread_ts="1.2",
        owner_user_id="U0",
        requested_by="U0",
        ask=Ask("a kite", Params(seed=1), "openai", None),
        width=1024,
        height=1024,
        provider_label="OpenAI",
        state="queued",
    )
    return replace(view, **changes)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            Failure(FailureReason.GAVE_UP, "unavailable", "The provider is busy.", attempts=3),
            "The provider is busy. I gave up after 3 tries; click *Regenerate* or run "
            "`/imagine` again in a few minutes.",
        ),
        (
            Failure(FailureReason.GAVE_UP, "publish", None, attempts=2),
            "Slack did not accept a message. I gave up after 2 tries; click *Regenerate* or "
            "run `/imagine` again in a few minutes.",
        ),
        (
            Failure(FailureReason.DEADLINE, "deadline", minutes=1),
            "The provider did not finish within 1 minute. Click *Regenerate* to try again.",
        ),
        (
            Failure(FailureReason.DEADLINE, "deadline", minutes=10),
            "The provider did not finish within 10 minutes. Click *Regenerate* to try again.",
        ),
        (Failure(FailureReason.NO_IMAGE, "task_failed"), "The provider returned no image."),
        (
            Failure(FailureReason.PROVIDER, "task_failed"),
            "The provider could not make this image.",
        ),
        (Failure(FailureReason.PROVIDER, "content_policy", "Not allowed."), "Not allowed."),
    ],
)
def test_failures_are_worded_with_their_data(failure: Failure, expected: str) -> None:
    assert messages.failure_text(failure) == expected
    assert blocks.failure_message(_view(), failure) == f":warning: *v3* failed. {expected}"


def test_the_requester_hears_why_the_image_did_not_start() -> None:
    unreachable = Failure(FailureReason.CHANNEL_UNREACHABLE, "not_in_channel")
    assert "/invite @imagine" in messages.requester_notice(unreachable)
    assert "archived" in messages.requester_notice(replace(unreachable, kind="is_archived"))
    assert "(missing_scope)" in messages.requester_notice(
        replace(unreachable, kind="missing_scope")
    )
    gave_up = Failure(FailureReason.GAVE_UP, "publish", attempts=2)
    notice = messages.requester_notice(gave_up)
    assert notice.startswith("I couldn't start your image. Slack did not accept a message.")


@pytest.mark.parametrize(
    ("reason", "number", "expected"),
    [
        (WaitReason.THREAD, 2, "queued behind v2 in this thread"),
        (WaitReason.SLOT, None, "waiting for a free slot at the provider"),
        (WaitReason.BREAKER, None, "the image provider is not answering right now"),
        (WaitReason.QUEUE, 1, "1 generation ahead"),
        (WaitReason.QUEUE, 3, "3 generations ahead"),
    ],
)
def test_waiting_reasons_show_in_the_status(
    reason: WaitReason, number: int | None, expected: str
) -> None:
    view = _view(waiting_reason=reason, waiting_number=number)
    assert messages.waiting_text(view) == expected
    assert f"({expected}; it starts automatically)" in blocks.status_text(view)
    assert "(" not in blocks.status_text(_view())


def test_a_failed_status_words_the_stored_failure() -> None:
    failure = Failure(FailureReason.NO_IMAGE, "task_failed")
    view = _view(state="failed", failure=failure)
    assert blocks.status_text(view).endswith("failed: The provider returned no image.")
    legacy = _view(state="failed", error="Old text.")
    assert blocks.status_text(legacy).endswith("failed: Old text.")
