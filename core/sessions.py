"""Use cases of a session: start it, regenerate a version, approve an image, cancel a run.

Each function is one transaction over plain data (ids, strings, Params). Actions that
name a generation (a button's value) take the conversation the click came from
(`Conversation`) and refuse with `ActionRefused` when the generation lives elsewhere or
is gone; a refusal changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import moderation, styles
from core.db import refinement as threads
from core.db import retry_busy
from core.db import review as review_db
from core.db import sessions as repo
from core.db import styles as styles_db
from core.db.usage import Asked
from core.db.views import GenerationGone, load_view
from core.flags import MAX_SEED, Params
from core.models import GenerationState
from core.policy import ApprovalRefusal, Policy, judge
from core.ports import Ask, GenerationView
from core.quotas import CostPolicy, admit, admit_all, lock_teams
from core.styles import StyleRefused

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
    "StartRequest",
    "approve",
    "cancel",
    "check_target",
    "new_request",
    "new_seed",
    "regenerate",
    "screen",
    "start",
    "start_all",
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


@dataclass(frozen=True)
class StartRequest:
    """A new session asked for (`/imagine`, a mention): where and who (`session`, owned by
    the person who asked), what (`ask`).

    Without `session.thread_ts` the thread does not exist yet: the job engine posts the
    root message before submitting. With it (the ts of the message that asked, e.g. a
    mention) that message is the thread's root. A `style` adds its fragment to the provider
    prompt and its references as inputs; with `resolve_style` the style is looked up in the
    transaction that records the request instead (the `--style` flag, else the channel's
    default; StyleRefused for an unknown name). `ask.model` is IMAGE_MODEL (the `--model`
    flag wins).
    """

    session: repo.NewSession
    ask: Ask
    response_url: str | None = None
    style: styles.Style | None = None
    resolve_style: bool = False

    def to_stored(self) -> dict[str, Any]:
        """This request as a JSON object (the intake's inbox, core.intake). Only a request
        as a person typed it can be stored: raises ValueError for one with a resolved
        `style` or a refinement's fields."""
        ask = self.ask
        refinement = (ask.instruction, ask.provider_prompt, ask.inputs_note, ask.parent_image_id)
        if self.style is not None or any(field is not None for field in refinement):
            raise ValueError("only a new request as typed can be stored")
        return {
            "session": {
                "team_id": self.session.team_id,
                "channel_id": self.session.channel_id,
                "owner": self.session.owner,
                "enterprise_id": self.session.enterprise_id,
                "thread_ts": self.session.thread_ts,
            },
            "prompt": ask.prompt,
            "params": ask.params.to_stored(),
            "seed": ask.params.seed,
            "provider": ask.provider,
            "model": ask.model,
            "response_url": self.response_url,
            "resolve_style": self.resolve_style,
        }

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> StartRequest:
        """The request `to_stored` gave `data` for."""
        params = Params.from_stored(data["params"], data["seed"])
        return cls(
            repo.NewSession(**data["session"]),
            Ask(data["prompt"], params, data["provider"], data["model"]),
            response_url=data["response_url"],
            resolve_style=data["resolve_style"],
        )


def new_request(
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    prompt: str,
    params: Params,
    provider: str,
    model: str | None,
    enterprise_id: str | None = None,
    thread_ts: str | None = None,
    **request: Any,
) -> StartRequest:
    """A `StartRequest` from its fields: its session (`team_id`, `channel_id`, the owner
    `user_id`, `enterprise_id`: the team's Grid org or None, `thread_ts`), its ask
    (`prompt`, `params`, `provider`, `model`) and the other fields (`response_url`,
    `style`, `resolve_style`)."""
    session = repo.NewSession(team_id, channel_id, user_id, enterprise_id, thread_ts)
    return StartRequest(session, Ask(prompt, params, provider, model), **request)


async def screen(
    moderator: moderation.Moderator | None,
    sm: async_sessionmaker[AsyncSession],
    request: StartRequest,
) -> None:
    """The content policy's check of a new request's prompt. Raises
    moderation.ModerationRefused (nothing recorded but the audit row)."""
    where = request.session
    await moderation.check_request(
        moderator,
        sm,
        team_id=where.team_id,
        channel_id=where.channel_id,
        user_id=where.owner,
        text=request.ask.prompt,
    )


async def start(
    sm: async_sessionmaker[AsyncSession],
    *,
    moderator: moderation.Moderator | None = None,
    cost: CostPolicy | None = None,
    **fields: Any,
) -> int:
    """Record a new session and its first generation (queued) in one transaction; the
    `fields` make a `StartRequest` (`new_request`). Returns the generation id once it is
    committed. (On SQLite the listeners go through core.intake instead.)

    Raises moderation.ModerationRefused (nothing recorded but the audit row) when
    `moderator`'s content policy flags the prompt; core.styles.StyleRefused,
    core.quotas.QuotaExceeded or DuplicateRequest (nothing is stored then).
    """
    asked = new_request(**fields)
    await screen(moderator, sm, asked)
    async with sm.begin() as db:
        [answer] = await start_all(db, [asked], cost)
    if isinstance(answer, Exception):
        raise answer
    return answer


async def start_all(
    db: AsyncSession, requests: Sequence[StartRequest], cost: CostPolicy | None
) -> list[int | Exception]:
    """Record new sessions with their first generations in the caller's transaction: the
    styles resolved, one multi-row INSERT per table, then the quota and duplicate checks of
    every request in order (`core.quotas.admit_all`). Returns per request its generation
    id, or the StyleRefused / QuotaExceeded / DuplicateRequest that refused it (nothing of
    it stays stored)."""
    answers: list[int | Exception] = []
    chosen: dict[int, StartRequest] = {}
    for i, request in enumerate(await _with_styles(db, requests)):
        if isinstance(request, Exception):
            answers.append(request)
        else:
            answers.append(0)
            chosen[i] = request
    if not chosen:
        return answers
    teams = [r.session.team_id for r in chosen.values()]
    await lock_teams(db, cost, teams)  # the write lock, first
    stored = await _insert(db, list(chosen.values()))
    verdicts = await admit_all(db, cost, [(asked, r.ask.params) for r, asked in stored])
    refused = []
    for i, (request, asked), verdict in zip(chosen, stored, verdicts, strict=True):
        if verdict is not None:
            refused.append(asked.generation_id)
            answers[i] = verdict
            continue
        await styles.attach(db, asked.generation_id, request.ask.prompt, request.style)
        answers[i] = asked.generation_id
    await repo.discard_generations_sessions(db, refused)
    return answers


async def _with_styles(
    db: AsyncSession, requests: Sequence[StartRequest]
) -> list[StartRequest | StyleRefused]:
    """Each request with its style resolved when it asks for that (`resolve_style`: the
    `--style` flag or the channel's default; looked up once per channel and name, the
    channels' defaults in one query), or the StyleRefused for an unknown style."""
    found: dict[tuple[str, str, str | None], styles.Style | StyleRefused | None] = {}
    plain = {
        (r.session.team_id, r.session.channel_id)
        for r in requests
        if r.resolve_style and not r.ask.params.style
    }
    defaults = await styles_db.channel_defaults(db, plain)
    out: list[StartRequest | StyleRefused] = []
    for r in requests:
        if not r.resolve_style:
            out.append(r)
            continue
        key = (r.session.team_id, r.session.channel_id, r.ask.params.style)
        if key[2] is None and key[:2] not in defaults:
            found[key] = None  # no flag, no channel default: no style
        if key not in found:
            try:
                found[key] = await styles.resolve_in(db, *key)
            except StyleRefused as refused:
                found[key] = refused
        style = found[key]
        out.append(style if isinstance(style, StyleRefused) else replace(r, style=style))
    return out


async def _insert(
    db: AsyncSession, requests: list[StartRequest]
) -> list[tuple[StartRequest, Asked]]:
    """Insert a session and its queued first generation per request (multi-row INSERTs);
    returns each request with the quota check's view of its generation."""
    news = [
        repo.NewGeneration.asked(
            0,
            "imagine",
            r.session.owner,
            r.ask,
            random_seed=new_seed(),
            response_url=r.response_url,
        )
        for r in requests
    ]
    session_ids = await repo.add_sessions(db, [r.session for r in requests])
    news = [replace(new, session_id=sid) for new, sid in zip(news, session_ids, strict=True)]
    generation_ids = await repo.add_first_generations(db, news)
    return [
        (r, _asked(r, new, generation_id))
        for r, new, generation_id in zip(requests, news, generation_ids, strict=True)
    ]


def _asked(request: StartRequest, new: repo.NewGeneration, generation_id: int) -> Asked:
    """The quota check's view of a first generation about to be stored (as
    `core.db.usage.asked` would read it back)."""
    ask = new.ask
    return Asked(
        generation_id,
        new.kind,
        request.session.team_id,
        request.session.channel_id,
        new.requested_by,
        styles.styled_prompt(ask.prompt, request.style),
        ask.provider,
        ask.model,
        *ask.params.size(),
        ask.params.quality,
        ask.params.n,
    )


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
        source = await repo.generation(db, generation_id)
        assert source is not None
        params = source.ask.params
        ask = source.ask.with_seed(new_seed(avoid=params.seed))
        new = repo.NewGeneration(source.session_id, "regenerate", user_id, ask, generation_id)
        new_id, _ = await repo.add_generation(db, new)
        # Checked after the insert, once this transaction writes (SQLite: holds the write
        # lock): a click that committed before, even concurrently, is seen, and this one is
        # rolled back. (Before the insert the check could miss a click still in flight.)
        if await repo.recent_regeneration(
            db, generation_id, user_id, DOUBLE_CLICK_SECONDS, exclude=new_id
        ):
            raise ActionRefused(Refusal.DOUBLE_CLICK)
        await threads.add_inputs(db, new_id, await threads.inputs(db, generation_id))
        await admit(db, cost, new_id, replace(params, seed=None))
        return new_id


@dataclass(frozen=True)
class ApprovalOutcome:
    """The result of an Approve click under the channel's review policy.

    `newly_approved`: this click counted (a new approval by this person);
    `approved_by`: who completed the image's approval (None while it is not complete);
    `completed`: this click completed it; `refused`: why the click did not count (nothing
    changed); `already_voted`: this person had approved it before; `gallery`: the image's
    gallery intent recorded by this click (publish it); `view`: the generation as it is now.
    """

    newly_approved: bool
    approved_by: str | None
    view: GenerationView
    completed: bool = False
    refused: ApprovalRefusal | None = None
    already_voted: bool = False
    gallery: int | None = None  # the image id whose gallery post was recorded

    @property
    def policy(self) -> Policy:
        """The policy the click was judged by."""
        return self.view.review


@retry_busy
async def approve(
    sm: async_sessionmaker[AsyncSession],
    generation_id: int,
    image_index: int,
    user_id: str,
    where: Conversation,
    *,
    user_groups: frozenset[str] = frozenset(),
) -> ApprovalOutcome:
    """Record `user_id`'s approval of image `image_index` (0-based) of a generation, under
    the channel's review policy (`core.policy.judge`; `user_groups` are the policy's user
    groups the clicker is a member of, resolved by the caller).

    An allowed approval counts once per person; when the count reaches the policy's
    `approvals_required` the image is approved (once: its `ApprovalRow`) and, when the
    policy names a gallery, its gallery post is recorded in the same transaction. A refused
    or repeated approval changes nothing. Every counted approval is audited.
    Raises ActionRefused (GONE when the generation or image does not exist,
    WRONG_CONVERSATION).
    """
    async with sm.begin() as db:
        found = await check_target(db, generation_id, where)
        image = await repo.image_id(db, generation_id, image_index)
        if image is None:
            raise ActionRefused(Refusal.GONE)
        await review_db.lock_image(db, image)
        view = await load_view(db, generation_id)
        done = view.images[image_index].approved_by if image_index < len(view.images) else None
        if done is not None:
            return ApprovalOutcome(False, done, view)
        requesters = (view.requested_by, view.owner_user_id)
        refusal = judge(view.review, user_id, requesters, user_groups)
        if refusal is not None:
            return ApprovalOutcome(False, None, view, refused=refusal)
        if not await review_db.add_vote(db, image, user_id):
            return ApprovalOutcome(False, None, view, already_voted=True)
        count = len((await review_db.votes(db, [image]))[image])
        audit = _audit(found, user_id, view.review, generation_id, image)
        await review_db.add_audit(
            db, **audit, action="approve", detail={"image": image_index + 1, "count": count}
        )
        completed, gallery = False, None
        if count >= view.review.approvals_required:
            completed, _ = await repo.approve_image(db, image, user_id)
        if completed:
            await review_db.add_audit(db, **audit, action="approved", detail={"count": count})
            if view.review.gallery_channel_id:
                await review_db.add_gallery_intent(
                    db, image, view.review.gallery_channel_id, user_id
                )
                gallery = image
        view = await load_view(db, generation_id)
        approver = view.images[image_index].approved_by
        return ApprovalOutcome(True, approver, view, completed=completed, gallery=gallery)


def _audit(
    found: repo.Target, user_id: str, policy: Policy, generation_id: int, image: int | None
) -> dict[str, Any]:
    """The common fields of an audit row about a click on a generation."""
    return {
        "team_id": found.team_id,
        "channel_id": found.channel_id,
        "user_id": user_id,
        "policy": policy,
        "generation_id": generation_id,
        "image_id": image,
    }


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
