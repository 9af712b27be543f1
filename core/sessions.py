"""Use cases of a session: start it, regenerate a version, approve an image, cancel a run.

Each function is one transaction over plain data (ids, strings, Params). Actions that
name a generation (a button's value) take the conversation the click came from
(`Conversation`) and refuse with `ActionRefused` when the generation lives elsewhere or
is gone; a refusal changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import refinement as threads
from core.db import sessions as repo
from core.db.views import GenerationGone, load_view
from core.flags import MAX_SEED, Params
from core.models import GenerationState
from core.ports import GenerationView
from core.quotas import CostPolicy, admit

# A second Regenerate click by the same person on the same version within this many
# seconds is a double-click: it queues nothing (issue 8, "one click, one action").
DOUBLE_CLICK_SECONDS = 5.0

__all__ = [
    "ActionRefused",
    "ApprovalOutcome",
    "CancelOutcome",
    "Conversation",
    "GenerationGone",
    "Refusal",
    "approve",
    "cancel",
    "check_target",
    "new_seed",
    "regenerate",
    "start",
]


class Refusal(StrEnum):
    """Why an action on a generation did nothing."""

    GONE = "gone"  # the generation (or image) no longer exists
    WRONG_CONVERSATION = "wrong_conversation"  # it lives in another channel or team
    DOUBLE_CLICK = "double_click"  # the same person just did the same thing


class ActionRefused(Exception):
    """An action was refused; `reason` is a Refusal. Nothing was changed."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class Conversation:
    """Where an action came from: the team and channel of the click (Slack's payload)."""

    team_id: str
    channel_id: str


def new_seed(avoid: int | None = None) -> int:
    """A random seed in [0, 2**32), different from `avoid`."""
    while True:
        seed = secrets.randbelow(MAX_SEED + 1)
        if seed != avoid:
            return seed


async def check_target(db: AsyncSession, generation_id: int, where: Conversation) -> repo.Target:
    """The generation's location, if it lives in `where` (same channel and team).

    Raises ActionRefused(GONE) when it does not exist, ActionRefused(WRONG_CONVERSATION)
    when it lives in another channel or team.
    """
    found = await repo.target(db, generation_id)
    if found is None:
        raise ActionRefused(Refusal.GONE)
    if (found.channel_id, found.team_id) != (where.channel_id, where.team_id):
        raise ActionRefused(Refusal.WRONG_CONVERSATION)
    return found


async def start(
    sm: async_sessionmaker[AsyncSession],
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    prompt: str,
    params: Params,
    provider: str,
    model: str | None,
    response_url: str | None,
    cost: CostPolicy | None = None,
) -> int:
    """Record a new session and its first generation (queued) in one transaction.

    The thread does not exist yet: the job engine opens it before submitting.
    Returns the generation id. Raises core.quotas.QuotaExceeded / DuplicateRequest
    (checked against `cost`, nothing is stored then).
    """
    width, height = params.size()
    seed = params.seed if params.seed is not None else new_seed()
    async with sm.begin() as db:
        session_id = await repo.add_session(
            db, team_id=team_id, channel_id=channel_id, owner=user_id
        )
        generation_id, _ = await repo.add_generation(
            db,
            repo.NewGeneration(
                session_id=session_id,
                kind="imagine",
                requested_by=user_id,
                prompt=prompt,
                params=params,
                seed=seed,
                width=width,
                height=height,
                provider=provider,
                model=params.model or model,
                response_url=response_url,
            ),
        )
        await admit(db, cost, generation_id, params)
        return generation_id


@repo.retry_version_race
async def regenerate(
    sm: async_sessionmaker[AsyncSession],
    generation_id: int,
    user_id: str,
    where: Conversation,
    cost: CostPolicy | None = None,
) -> int:
    """Queue the same request as `generation_id` with a new seed, as the session's next
    version (a refinement keeps its instruction, base image, references and mask).
    Checked against the quotas in `cost` (raises core.quotas.QuotaExceeded).

    Returns the new generation id. Raises ActionRefused (GONE, WRONG_CONVERSATION, or
    DOUBLE_CLICK when `user_id` regenerated this version less than DOUBLE_CLICK_SECONDS
    ago: the guard is durable, in the database, so it holds across processes).
    """
    async with sm.begin() as db:
        await check_target(db, generation_id, where)
        if await repo.recent_regeneration(db, generation_id, user_id, DOUBLE_CLICK_SECONDS):
            raise ActionRefused(Refusal.DOUBLE_CLICK)
        source = await repo.generation(db, generation_id)
        assert source is not None
        new_id, _ = await repo.add_generation(
            db,
            repo.NewGeneration(
                session_id=source.session_id,
                kind="regenerate",
                requested_by=user_id,
                prompt=source.prompt,
                params=source.params,
                seed=new_seed(avoid=source.params.seed),
                width=source.width,
                height=source.height,
                provider=source.provider,
                model=source.model,
                instruction=source.instruction,
                provider_prompt=source.provider_prompt,
                inputs_note=source.inputs_note,
                parent_generation_id=source.generation_id,
                parent_image_id=source.parent_image_id,
            ),
        )
        await threads.add_inputs(db, new_id, await threads.inputs(db, generation_id))
        await admit(db, cost, new_id, replace(source.params, seed=None))
        return new_id


@dataclass(frozen=True)
class ApprovalOutcome:
    """The result of an Approve click: whether it was new, who approved the image first,
    and the generation as it is now."""

    newly_approved: bool
    approved_by: str
    view: GenerationView


async def approve(
    sm: async_sessionmaker[AsyncSession],
    generation_id: int,
    image_index: int,
    user_id: str,
    where: Conversation,
) -> ApprovalOutcome:
    """Record that `user_id` approved image `image_index` (0-based) of a generation.

    A second approval of the same image changes nothing (the first approver stays).
    Raises ActionRefused (GONE when the generation or image does not exist,
    WRONG_CONVERSATION).
    """
    async with sm.begin() as db:
        await check_target(db, generation_id, where)
        image = await repo.image_id(db, generation_id, image_index)
        if image is None:
            raise ActionRefused(Refusal.GONE)
        newly, approver = await repo.approve_image(db, image, user_id)
        view = await load_view(db, generation_id)
        return ApprovalOutcome(newly_approved=newly, approved_by=approver, view=view)


@dataclass(frozen=True)
class CancelOutcome:
    """What a Cancel click did: `allowed` (requester or session owner), whether the
    generation was still running, and the generation as it is now."""

    allowed: bool
    running: bool
    view: GenerationView


async def cancel(
    sm: async_sessionmaker[AsyncSession], generation_id: int, user_id: str, where: Conversation
) -> CancelOutcome:
    """Ask the engine to cancel a running generation. Only its requester or the session's
    owner may. The engine cancels at the provider where it can; a result that still comes
    in is stored but not posted. Raises ActionRefused (GONE, WRONG_CONVERSATION)."""
    async with sm.begin() as db:
        await check_target(db, generation_id, where)
        view = await load_view(db, generation_id)
        allowed = user_id in (view.requested_by, view.owner_user_id)
        running = view.state in GenerationState.ACTIVE
        if allowed and running:
            await repo.request_cancel(db, generation_id)
        return CancelOutcome(allowed, running, view)
