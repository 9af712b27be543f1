"""*Generate anyway* after a duplicate warning (issue 11): queue the earlier request again,
as a new session in the same channel, without the duplicate check (quotas still apply)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import sessions
from core.db import sessions as repo
from core.db import usage as usage_db
from core.quotas import CostPolicy
from core.sessions import ActionRefused, Conversation, Refusal, check_target


async def generate_anyway(
    sm: async_sessionmaker[AsyncSession],
    generation_id: int,
    user_id: str,
    where: Conversation,
    *,
    cost: CostPolicy,
) -> int:
    """Start a new session with the prompt and flags of `generation_id` (its seed only
    when it was fixed with `--seed`) for `user_id`; returns the new generation id.

    Raises ActionRefused (GONE, WRONG_CONVERSATION) and core.quotas.QuotaExceeded.
    """
    async with sm() as db:
        target = await check_target(db, generation_id, where)
        source = await repo.generation(db, generation_id)
        fixed = await usage_db.seed_fixed(db, generation_id)
    if source is None:
        raise ActionRefused(Refusal.GONE)
    ask = source.ask
    return await sessions.start(
        sm,
        team_id=target.team_id,
        channel_id=target.channel_id,
        user_id=user_id,
        prompt=ask.prompt,
        params=ask.params if fixed else replace(ask.params, seed=None),
        provider=ask.provider,
        model=ask.model,
        response_url=None,
        cost=replace(cost, duplicate_window=0.0),
    )
