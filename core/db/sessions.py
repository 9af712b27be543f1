"""Sessions, generations, approvals and deliveries: every query and write, as named
functions over an open `AsyncSession` (the use case owns the transaction) that take and
return plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

from core.db import notify
from core.db.rows import ask_of
from core.models import (
    ApprovalRow,
    DeliveryRow,
    GenerationRow,
    ImageRow,
    SessionRow,
    db_now,
)
from core.ports import Ask

# Two requests in one thread at once may pick the same next version number; the loser's
# transaction hits uq_generations_version and is simply run again (whole use case).
retry_version_race = retry(
    retry=retry_if_exception_type(IntegrityError),
    stop=stop_after_attempt(5),
    wait=wait_random(0, 0.05),
    reraise=True,
)


@dataclass(frozen=True)
class Target:
    """Where a generation lives: its session, channel and team (for the conversation check)."""

    generation_id: int
    session_id: int
    team_id: str
    channel_id: str


@dataclass(frozen=True)
class NewGeneration:
    """A generation to queue: what was asked (`ask.params.seed` is its seed: set; its size
    in pixels is `ask.params.size()`), by whom, as which `kind` of version; a regeneration
    or refinement names the generation it comes from (`parent_generation_id`);
    `response_url` answers a slash command."""

    session_id: int
    kind: str  # imagine | regenerate | refine
    requested_by: str
    ask: Ask
    parent_generation_id: int | None = None
    response_url: str | None = None

    @classmethod
    def asked(
        cls,
        session_id: int,
        kind: str,
        user_id: str,
        ask: Ask,
        *,
        random_seed: int,
        **extra: Any,
    ) -> NewGeneration:
        """A generation as a person asked for it (`kind` imagine | refine): its seed
        `ask.params.seed` or else `random_seed`, its model `ask.params.model` (`--model`) or
        else `ask.model` (IMAGE_MODEL); `extra` fills the optional fields."""
        params = ask.params
        seed = params.seed if params.seed is not None else random_seed
        fixed = replace(ask, model=params.model or ask.model).with_seed(seed)
        return cls(session_id, kind, user_id, fixed, **extra)


@dataclass(frozen=True)
class GenerationRecord:
    """A stored generation's request (what a regeneration repeats; `ask.params.seed` is
    the seed it used)."""

    generation_id: int
    session_id: int
    ask: Ask


@dataclass(frozen=True)
class NewSession:
    """A session to open: `thread_ts` is None when the job engine is to post the root
    message, or the ts of an existing message the session's thread hangs under;
    `enterprise_id` is the team's Grid org (None outside Grid)."""

    team_id: str
    channel_id: str
    owner: str
    enterprise_id: str | None = None
    thread_ts: str | None = None


async def add_sessions(db: AsyncSession, sessions: Sequence[NewSession]) -> list[int]:
    """Insert sessions; returns their ids in the order given. Several at once need this
    transaction to hold the write lock already (`_insert_many`)."""
    rows = [
        {
            "team_id": new.team_id,
            "enterprise_id": new.enterprise_id,
            "channel_id": new.channel_id,
            "owner_user_id": new.owner,
            "thread_ts": new.thread_ts,
        }
        for new in sessions
    ]
    return await _insert_many(db, SessionRow, rows)


async def add_first_generations(db: AsyncSession, news: Sequence[NewGeneration]) -> list[int]:
    """Insert the queued first generation (version 1) of each of these new sessions;
    returns their ids in the order given (as `add_sessions`)."""
    ids = await _insert_many(db, GenerationRow, [_generation_values(new, 1) for new in news])
    await notify.announce(db)  # wakes workers everywhere when this transaction commits
    return ids


async def _insert_many(db: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows`; returns their ids in order.

    On SQLite several rows go in one multi-row INSERT with ids given here, the next ones
    after the table's largest (what SQLite itself would pick: INTEGER PRIMARY KEY without
    AUTOINCREMENT, https://www.sqlite.org/autoinc.html). That is safe only while this
    transaction holds the write lock, so the caller must have written before. (SQLAlchemy's
    `RETURNING … sort_by_parameter_order` would fall back to one INSERT per row there.)
    Elsewhere: one INSERT … RETURNING per row.
    """
    if len(rows) > 1 and db.get_bind().dialect.name == "sqlite":
        first = (await db.scalar(select(func.max(table.id)))) or 0
        ids = list(range(first + 1, first + 1 + len(rows)))
        given = [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]
        await db.execute(insert(table), given)
        return ids
    return [await db.scalar(insert(table).values(row).returning(table.id)) for row in rows]


def _generation_values(new: NewGeneration, version: int) -> dict[str, Any]:
    """The columns of a queued generation as the `version`th of its session."""
    ask = new.ask
    width, height = ask.params.size()
    return {
        "session_id": new.session_id,
        "version": version,
        "kind": new.kind,
        "requested_by": new.requested_by,
        "parent_generation_id": new.parent_generation_id,
        "parent_image_id": ask.parent_image_id,
        "prompt": ask.prompt,
        "instruction": ask.instruction,
        "provider_prompt": ask.provider_prompt,
        "inputs_note": ask.inputs_note.to_stored() if ask.inputs_note else None,
        "params": ask.params.to_stored(),
        "seed": ask.params.seed,
        "width": width,
        "height": height,
        "provider": ask.provider,
        "model": ask.model,
        "response_url": new.response_url,
    }


async def add_generation(db: AsyncSession, new: NewGeneration) -> tuple[int, int]:
    """Insert a queued generation as its session's next version; returns (id, version).

    Raises IntegrityError when a concurrent transaction took the same version number
    (callers retry with `retry_version_race`).
    """
    last = await db.scalar(
        select(func.max(GenerationRow.version)).where(GenerationRow.session_id == new.session_id)
    )
    row = GenerationRow(**_generation_values(new, (last or 0) + 1))
    db.add(row)
    await db.flush()
    await notify.announce(db)  # wakes workers everywhere when this transaction commits
    return row.id, row.version


async def target(db: AsyncSession, generation_id: int) -> Target | None:
    """Where a generation lives, or None when it does not exist."""
    found = (
        await db.execute(
            select(GenerationRow.session_id, SessionRow.team_id, SessionRow.channel_id)
            .join(SessionRow, SessionRow.id == GenerationRow.session_id)
            .where(GenerationRow.id == generation_id)
        )
    ).first()
    return Target(generation_id, found[0], found[1], found[2]) if found else None


async def generation(db: AsyncSession, generation_id: int) -> GenerationRecord | None:
    """A generation's request, or None when it does not exist."""
    row = await db.get(GenerationRow, generation_id)
    return None if row is None else GenerationRecord(row.id, row.session_id, ask_of(row))


async def recent_regeneration(
    db: AsyncSession,
    source_id: int,
    user_id: str,
    within_seconds: float,
    exclude: int | None = None,
) -> int | None:
    """The id of a regeneration of `source_id` that `user_id` asked for less than
    `within_seconds` ago (database clock), other than `exclude`, or None."""
    return await db.scalar(
        select(GenerationRow.id)
        .where(
            GenerationRow.parent_generation_id == source_id,
            GenerationRow.kind == "regenerate",
            GenerationRow.requested_by == user_id,
            GenerationRow.created_at > db_now() - within_seconds,
            GenerationRow.id != (exclude or 0),
        )
        .limit(1)
    )


async def image_id(db: AsyncSession, generation_id: int, index: int) -> int | None:
    """The id of image `index` (0-based) of a generation, or None."""
    return await db.scalar(
        select(ImageRow.id).where(ImageRow.generation_id == generation_id, ImageRow.index == index)
    )


async def approve_image(db: AsyncSession, image: int, user_id: str) -> tuple[bool, str]:
    """Record `user_id`'s approval of an image unless it has one; returns (new, approver).

    The first approval stays: a second (or concurrent) one changes nothing.
    """
    existing = await db.scalar(select(ApprovalRow.user_id).where(ApprovalRow.image_id == image))
    if existing is not None:
        return False, existing
    try:
        async with db.begin_nested():
            db.add(ApprovalRow(image_id=image, user_id=user_id))
    except IntegrityError:  # a concurrent click won the race
        winner = await db.scalar(select(ApprovalRow.user_id).where(ApprovalRow.image_id == image))
        return False, winner or user_id
    return True, user_id


async def request_cancel(db: AsyncSession, generation_id: int) -> None:
    """Flag a generation for cancellation and make its job due now."""
    await db.execute(
        update(GenerationRow)
        .where(GenerationRow.id == generation_id)
        .values(cancel_requested=True, next_attempt_at=db_now())
    )


async def record_delivery(sm: async_sessionmaker[AsyncSession], key: str) -> bool:
    """Remember a platform delivery id; False when it was seen before (a retry)."""
    try:
        async with sm.begin() as db:
            db.add(DeliveryRow(key=key))
        return True
    except IntegrityError:
        return False


async def discard_session(sm: async_sessionmaker[AsyncSession], session_id: int) -> None:
    """Delete a session whose thread could never be opened, with its generations."""
    async with sm.begin() as db:
        await discard_sessions(db, [session_id])


async def discard_sessions(db: AsyncSession, session_ids: Sequence[int]) -> None:
    """Delete these sessions and their generations (in the caller's transaction)."""
    if not session_ids:
        return
    await db.execute(delete(GenerationRow).where(GenerationRow.session_id.in_(session_ids)))
    await db.execute(delete(SessionRow).where(SessionRow.id.in_(session_ids)))


async def discard_generations_sessions(db: AsyncSession, generation_ids: Sequence[int]) -> None:
    """Delete these first generations with their sessions (in the caller's transaction)."""
    if not generation_ids:
        return
    owners = select(GenerationRow.session_id).where(GenerationRow.id.in_(generation_ids))
    await discard_sessions(db, list((await db.scalars(owners)).all()))
