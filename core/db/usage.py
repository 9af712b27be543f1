"""Cost control: every query and write of quotas, usage, duplicates, the result cache and
budget alerts, as named functions over an open `AsyncSession` (the use case owns the
transaction) that take and return plain data. Times are UTC epoch seconds from the
caller's clock (`core.quotas.CostPolicy.clock`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models import (
    BudgetAlertRow,
    ChannelQuotaRow,
    CostRow,
    GenerationRow,
    GenerationState,
    ImageRow,
    QuotaLockRow,
    SessionRow,
)
from core.store import StoredBlob


@dataclass(frozen=True)
class CostLine:
    """One generation as usage sees it: who, where, what, when (epoch seconds), how many
    images asked for, the estimate (None = unpriced), and what came of it (state, the
    engine's cost, the provider's usage, whether the images were reused)."""

    generation_id: int
    team_id: str
    channel_id: str
    user_id: str
    provider: str
    model: str
    images: int
    estimated_usd: float | None
    created_at: float
    state: str
    cost_usd: float | None
    usage: dict[str, Any] | None
    reused: bool


@dataclass(frozen=True)
class Asked:
    """A queued generation as the quota check reads it (sizes in pixels)."""

    generation_id: int
    kind: str
    team_id: str
    channel_id: str
    user_id: str
    prompt: str
    provider: str
    model: str | None
    width: int
    height: int
    quality: str | None
    n: int


async def asked(db: AsyncSession, generation_id: int) -> Asked:
    """The generation `generation_id` (just inserted in this transaction) with its session's
    team and channel."""
    gen, session = (
        await db.execute(
            select(GenerationRow, SessionRow)
            .join(SessionRow, SessionRow.id == GenerationRow.session_id)
            .where(GenerationRow.id == generation_id)
        )
    ).one()
    params = gen.params or {}
    return Asked(
        gen.id,
        gen.kind,
        session.team_id,
        session.channel_id,
        gen.requested_by,
        gen.provider_prompt or gen.prompt,
        gen.provider,
        gen.model,
        gen.width,
        gen.height,
        params.get("quality"),
        int(params.get("n") or 1),
    )


async def lock_team(db: AsyncSession, team_id: str, now: float) -> None:
    """Write the workspace's lock row (insert or update), so this transaction holds the
    write lock (SQLite) or the row lock (PostgreSQL) until it ends: concurrent quota checks
    of one workspace run one after the other, each seeing the others' committed rows."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(QuotaLockRow).values(team_id=team_id, touched_at=now)
    await db.execute(
        stmt.on_conflict_do_update(index_elements=["team_id"], set_={"touched_at": now})
    )


async def add_costs(db: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Record the cost side of queued generations (`rows`: CostRow's columns; one
    multi-row INSERT)."""
    if rows:
        await db.execute(insert(CostRow), list(rows))


def _lines_query() -> Any:
    return select(CostRow, GenerationRow.state, GenerationRow.cost_usd, GenerationRow.usage).join(
        GenerationRow, GenerationRow.id == CostRow.generation_id
    )


def _line(cost: CostRow, state: str, cost_usd: float | None, usage: Any) -> CostLine:
    return CostLine(
        cost.generation_id,
        cost.team_id,
        cost.channel_id,
        cost.user_id,
        cost.provider,
        cost.model,
        cost.images,
        cost.estimated_usd,
        cost.created_at,
        state,
        cost_usd,
        usage if isinstance(usage, dict) else None,
        cost.reused_from_id is not None,
    )


async def lines(
    db: AsyncSession,
    start: float,
    end: float,
    *,
    team_id: str | None = None,
    user_id: str | None = None,
    channel_id: str | None = None,
) -> list[CostLine]:
    """The generations queued in [start, end), oldest first, optionally of one workspace,
    person or channel."""
    query = _lines_query().where(CostRow.created_at >= start, CostRow.created_at < end)
    if team_id is not None:
        query = query.where(CostRow.team_id == team_id)
    if user_id is not None:
        query = query.where(CostRow.user_id == user_id)
    if channel_id is not None:
        query = query.where(CostRow.channel_id == channel_id)
    rows = (await db.execute(query.order_by(CostRow.created_at))).all()
    return [_line(*row) for row in rows]


async def recent_requests(
    db: AsyncSession, request_keys: Sequence[str], since: float
) -> dict[str, tuple[int, float]]:
    """For each of `request_keys` queued at or after `since`, its newest generation:
    {key: (generation id, created_at)}; keys never seen are left out."""
    if not request_keys:
        return {}
    found = await db.execute(
        select(CostRow.request_key, CostRow.generation_id, CostRow.created_at)
        .where(CostRow.request_key.in_(set(request_keys)), CostRow.created_at >= since)
        .order_by(CostRow.created_at)
    )
    return {key: (generation_id, created_at) for key, generation_id, created_at in found}


async def seed_fixed(db: AsyncSession, generation_id: int) -> bool:
    """Whether the person fixed the seed (`--seed`) of a generation."""
    return bool(
        await db.scalar(select(CostRow.seed_fixed).where(CostRow.generation_id == generation_id))
    )


async def channel_quota(
    db: AsyncSession, team_id: str, channel_id: str
) -> tuple[int | None, float | None] | None:
    """A channel's overrides (user daily images, channel monthly USD), or None."""
    row = await db.get(ChannelQuotaRow, (team_id, channel_id))
    return (row.user_daily_images, row.monthly_usd) if row else None


async def channel_quotas(
    db: AsyncSession, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int | None, float | None] | None]:
    """`channel_quota` for each of these (team id, channel id) pairs, in one query (a burst
    of commands from many channels, issue 13)."""
    found: dict[tuple[str, str], tuple[int | None, float | None] | None] = dict.fromkeys(pairs)
    if not found:
        return found
    rows = await db.scalars(
        select(ChannelQuotaRow)
        .where(ChannelQuotaRow.team_id.in_({team for team, _ in found}))
        .where(ChannelQuotaRow.channel_id.in_({channel for _, channel in found}))
    )
    for row in rows:
        if (row.team_id, row.channel_id) in found:
            found[(row.team_id, row.channel_id)] = (row.user_daily_images, row.monthly_usd)
    return found


async def set_channel_quota(
    db: AsyncSession,
    team_id: str,
    channel_id: str,
    user_daily_images: int | None,
    monthly_usd: float | None,
    set_by: str,
) -> None:
    """Store a channel's overrides (replacing earlier ones)."""
    row = await db.get(ChannelQuotaRow, (team_id, channel_id))
    if row is None:
        row = ChannelQuotaRow(team_id=team_id, channel_id=channel_id, set_by=set_by)
        db.add(row)
    row.user_daily_images, row.monthly_usd, row.set_by = user_daily_images, monthly_usd, set_by
    await db.flush()


async def clear_channel_quota(db: AsyncSession, team_id: str, channel_id: str) -> bool:
    """Remove a channel's overrides; False when it had none."""
    row = await db.get(ChannelQuotaRow, (team_id, channel_id))
    if row is None:
        return False
    await db.delete(row)
    return True


async def record_alert(
    db: AsyncSession, team_id: str, month: str, spent: float, limit: float
) -> bool:
    """Record the workspace's budget alert for `month` unless it exists; True when new."""
    if await db.get(BudgetAlertRow, (team_id, month)) is not None:
        return False
    try:
        async with db.begin_nested():
            db.add(BudgetAlertRow(team_id=team_id, month=month, spent_usd=spent, limit_usd=limit))
    except IntegrityError:
        return False
    return True


async def claim_alerts(db: AsyncSession, now: float) -> list[tuple[str, str, float, float]]:
    """Mark every unsent budget alert as sent and return them: (team, month, spent, limit).
    A concurrent claimer gets none of the same (the update is conditional)."""
    pending = await db.scalars(select(BudgetAlertRow).where(BudgetAlertRow.sent_at.is_(None)))
    claimed = []
    for row in pending.all():
        result = await db.execute(
            update(BudgetAlertRow)
            .where(
                BudgetAlertRow.team_id == row.team_id,
                BudgetAlertRow.month == row.month,
                BudgetAlertRow.sent_at.is_(None),
            )
            .values(sent_at=now)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            claimed.append((row.team_id, row.month, row.spent_usd, row.limit_usd))
    return claimed


async def set_cache_key(db: AsyncSession, generation_id: int, key: str) -> None:
    """Remember the provider request a generation makes (result cache)."""
    await db.execute(
        update(CostRow).where(CostRow.generation_id == generation_id).values(cache_key=key)
    )


async def cached_images(
    db: AsyncSession, key: str, exclude: int
) -> tuple[int, list[ImageRow]] | None:
    """An earlier generation with the same cache key whose images are stored (completed,
    posted, or cancelled after completion): (its id, its images in order), or None."""
    done = (GenerationState.COMPLETED, GenerationState.POSTED, GenerationState.CANCELLED)
    source = await db.scalar(
        select(CostRow.generation_id)
        .join(GenerationRow, GenerationRow.id == CostRow.generation_id)
        .where(
            CostRow.cache_key == key,
            CostRow.generation_id != exclude,
            GenerationRow.state.in_(done),
            GenerationRow.completed_at.is_not(None),
        )
        .order_by(CostRow.generation_id)
        .limit(1)
    )
    if source is None:
        return None
    images = (
        await db.scalars(
            select(ImageRow).where(ImageRow.generation_id == source).order_by(ImageRow.index)
        )
    ).all()
    return (source, list(images)) if images else None


async def mark_reused(db: AsyncSession, generation_id: int, source_id: int) -> None:
    """Record that a generation's images were reused from `source_id` (cost 0)."""
    await db.execute(
        update(CostRow)
        .where(CostRow.generation_id == generation_id)
        .values(reused_from_id=source_id)
    )


async def cache_lookup(
    sm: async_sessionmaker[AsyncSession], generation_id: int, key: str, *, use: bool
) -> tuple[int, list[StoredBlob]] | None:
    """Remember `key` as the generation's cache key and, when `use`, find an earlier
    generation with the same key and stored images: (its id, the images in order as store
    blobs), or None."""
    async with sm.begin() as db:
        await set_cache_key(db, generation_id, key)
        found = await cached_images(db, key, generation_id) if use else None
        if found is None:
            return None
        source, images = found
        blobs = [
            StoredBlob(i.sha256, Path(i.path), i.width, i.height, i.mime, i.bytes) for i in images
        ]
        await mark_reused(db, generation_id, source)
        return source, blobs
