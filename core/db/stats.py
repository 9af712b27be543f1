"""Reads for the metrics (core.metrics): a generation's timings and the queue by state."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from core.db.jobs import Maker
from core.models import GenerationRow, GenerationState


@dataclass(frozen=True)
class Times:
    """A generation's timings in seconds: request to submit (`queue_wait`) and submit to
    stored images (`since_submit`); None where a step has not happened."""

    queue_wait: float | None
    since_submit: float | None


async def times(sm: Maker, generation_id: int) -> Times | None:
    """The generation's Times, or None when it is gone."""
    async with sm() as s:
        row = (
            await s.execute(
                select(
                    GenerationRow.created_at,
                    GenerationRow.submitted_at,
                    GenerationRow.completed_at,
                ).where(GenerationRow.id == generation_id)
            )
        ).first()
    if row is None:
        return None
    created, submitted, completed = row
    wait = submitted - created if submitted is not None and created is not None else None
    task = completed - submitted if completed is not None and submitted is not None else None
    return Times(wait, task)


async def unfinished_by_state(sm: Maker) -> dict[str, int]:
    """How many generations are in each unfinished state (GenerationState.ACTIVE)."""
    async with sm() as s:
        rows = await s.execute(
            select(GenerationRow.state, func.count())
            .where(GenerationRow.state.in_(GenerationState.ACTIVE))
            .group_by(GenerationRow.state)
        )
        return {str(state): int(count) for state, count in rows}
