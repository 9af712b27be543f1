"""Persistence of retention and forget-me (issue 12): which sessions are stale, and the
deletions and anonymisations, as functions over an open `AsyncSession`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import String, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import (
    ApprovalRow,
    AttachmentRow,
    ChangeRequestRow,
    CostRow,
    DeletionRow,
    DeliveryRow,
    GenerationRow,
    GenerationState,
    HomeSeenRow,
    ImageRow,
    InputRow,
    ReviewVoteRow,
    SessionRow,
    db_now,
)

FORGOTTEN = "forgotten"  # the user id that replaces a person who asked to be forgotten
FORGOTTEN_VOTE = FORGOTTEN + ":"  # + the vote's id: a forgotten reviewer's vote, one per vote


async def stale_sessions(db: AsyncSession, before: float) -> list[int]:
    """Sessions whose last activity (creation, a generation, a posted image) is older than
    `before` (UTC epoch seconds) and that have no running generation."""
    last_gen = (
        select(GenerationRow.session_id, func.max(GenerationRow.created_at).label("at"))
        .group_by(GenerationRow.session_id)
        .subquery()
    )
    last_att = (
        select(AttachmentRow.session_id, func.max(AttachmentRow.created_at).label("at"))
        .group_by(AttachmentRow.session_id)
        .subquery()
    )
    running = select(GenerationRow.session_id).where(
        GenerationRow.state.in_(GenerationState.ACTIVE)
    )
    rows = await db.scalars(
        select(SessionRow.id)
        .outerjoin(last_gen, last_gen.c.session_id == SessionRow.id)
        .outerjoin(last_att, last_att.c.session_id == SessionRow.id)
        .where(
            SessionRow.created_at < before,
            or_(last_gen.c.at.is_(None), last_gen.c.at < before),
            or_(last_att.c.at.is_(None), last_att.c.at < before),
            SessionRow.id.not_in(running),
        )
    )
    return list(rows.all())


async def generation_ids(db: AsyncSession, session_ids: Sequence[int]) -> list[int]:
    """The generations of these sessions."""
    found = await db.scalars(
        select(GenerationRow.id).where(GenerationRow.session_id.in_(session_ids))
    )
    return list(found.all())


async def drop_images(
    db: AsyncSession, generation_ids: Sequence[int], *, keep_approved: bool
) -> tuple[int, list[str], list[str]]:
    """Delete the images of these generations (all, or all but approved ones); returns
    (count, file paths, Slack file ids)."""
    query = select(ImageRow.id, ImageRow.path, ImageRow.slack_file_id).where(
        ImageRow.generation_id.in_(generation_ids)
    )
    if keep_approved:
        query = query.where(ImageRow.id.not_in(select(ApprovalRow.image_id)))
    rows = (await db.execute(query)).all()
    ids = [r[0] for r in rows]
    if ids:
        await db.execute(
            update(SessionRow).where(SessionRow.base_image_id.in_(ids)).values(base_image_id=None)
        )
        await db.execute(
            update(GenerationRow)
            .where(GenerationRow.parent_image_id.in_(ids))
            .values(parent_image_id=None)
        )
        await db.execute(delete(ApprovalRow).where(ApprovalRow.image_id.in_(ids)))
        await db.execute(delete(ImageRow).where(ImageRow.id.in_(ids)))
    return len(ids), [r[1] for r in rows], [r[2] for r in rows if r[2]]


async def drop_inputs(db: AsyncSession, generation_ids: Sequence[int]) -> tuple[int, list[str]]:
    """Delete the input snapshots of these generations; returns (count, file paths)."""
    paths = list(
        (
            await db.scalars(
                select(InputRow.path).where(InputRow.generation_id.in_(generation_ids))
            )
        ).all()
    )
    await db.execute(delete(InputRow).where(InputRow.generation_id.in_(generation_ids)))
    return len(paths), paths


async def drop_attachments(
    db: AsyncSession, session_ids: Sequence[int], posted_by: str | None = None
) -> tuple[int, list[str]]:
    """Delete the attachments of these sessions (and, with `posted_by`, every one that
    user posted); returns (count, file paths)."""
    condition = AttachmentRow.session_id.in_(session_ids)
    if posted_by is not None:
        condition = or_(condition, AttachmentRow.posted_by == posted_by)
    paths = list((await db.scalars(select(AttachmentRow.path).where(condition))).all())
    await db.execute(delete(AttachmentRow).where(condition))
    return len(paths), paths


async def blank_prompts(db: AsyncSession, generation_ids: Sequence[int]) -> int:
    """Erase what people typed from these generations (prompt, instruction, the provider
    prompt and notes); returns how many still had a prompt."""
    had = await db.scalar(
        select(func.count()).where(GenerationRow.id.in_(generation_ids), GenerationRow.prompt != "")
    )
    await db.execute(
        update(GenerationRow)
        .where(GenerationRow.id.in_(generation_ids))
        .values(prompt="", instruction=None, provider_prompt=None, inputs_note=None, note=None)
    )
    return int(had or 0)


async def prune_deliveries(db: AsyncSession, before: float) -> int:
    """Forget the delivery ids received before `before` (UTC epoch seconds)."""
    result = await db.execute(delete(DeliveryRow).where(DeliveryRow.received_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


# -- forget-me: the bot's platform messages and files to delete -----------------------------


async def record_deletions(
    db: AsyncSession,
    team_id: str,
    messages: Sequence[tuple[str, str]],
    files: Sequence[str],
) -> int:
    """Record the messages ((channel id, ts)) and files (file ids) of `team_id` to delete,
    skipping those already recorded; returns how many were new."""
    wanted = {("message", c, ts) for c, ts in messages} | {("file", "", f) for f in files}
    known = await db.execute(
        select(DeletionRow.kind, DeletionRow.channel_id, DeletionRow.ref).where(
            DeletionRow.team_id == team_id
        )
    )
    new = wanted - {tuple(row) for row in known.all()}
    for kind, channel, ref in sorted(new):
        db.add(DeletionRow(team_id=team_id, kind=kind, channel_id=channel, ref=ref, attempts=0))
    return len(new)


async def due_deletions(
    db: AsyncSession, team_id: str, claimed_before: float
) -> list[tuple[int, str, str, str]]:
    """The deletions of `team_id` not done and not claimed since `claimed_before` (UTC epoch
    seconds, database clock): (id, kind, channel id, ref), oldest first."""
    rows = await db.execute(
        select(DeletionRow.id, DeletionRow.kind, DeletionRow.channel_id, DeletionRow.ref)
        .where(
            DeletionRow.team_id == team_id,
            DeletionRow.done_at.is_(None),
            or_(DeletionRow.claimed_at.is_(None), DeletionRow.claimed_at < claimed_before),
        )
        .order_by(DeletionRow.id)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows.all()]


async def claim_deletion(db: AsyncSession, deletion_id: int, claimed_before: float) -> bool:
    """Claim one deletion before it is made (one more attempt, `claimed_at` now); False
    when it is done or another caller claimed it since `claimed_before`."""
    result = await db.execute(
        update(DeletionRow)
        .where(
            DeletionRow.id == deletion_id,
            DeletionRow.done_at.is_(None),
            or_(DeletionRow.claimed_at.is_(None), DeletionRow.claimed_at < claimed_before),
        )
        .values(claimed_at=db_now(), attempts=DeletionRow.attempts + 1)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def finish_deletion(db: AsyncSession, deletion_id: int, outcome: str | None) -> None:
    """Record the answer of a claimed deletion: `outcome` ("deleted", "gone", a refusal
    code) marks it done; None releases the claim for a later try."""
    values: dict[str, object] = {"claimed_at": None}
    if outcome is not None:
        values = {"done_at": db_now(), "outcome": outcome}
    await db.execute(update(DeletionRow).where(DeletionRow.id == deletion_id).values(**values))


async def db_clock(db: AsyncSession) -> float:
    """The database's current time (UTC epoch seconds)."""
    return float(await db.scalar(select(db_now())) or 0.0)


async def anonymise_records(db: AsyncSession, team_id: str, user_id: str, forgotten: str) -> None:
    """Replace `user_id` by `forgotten` in the usage rows of `team_id` (model, size and
    cost stay as anonymous totals) and in change requests, whose comment is erased; forget
    that the person opened the App Home tab (`home_seen`)."""
    await db.execute(
        delete(HomeSeenRow).where(HomeSeenRow.team_id == team_id, HomeSeenRow.user_id == user_id)
    )
    await db.execute(
        update(CostRow)
        .where(CostRow.team_id == team_id, CostRow.user_id == user_id)
        .values(user_id=forgotten, request_key="")
    )
    await db.execute(
        update(ChangeRequestRow)
        .where(
            ChangeRequestRow.user_id == user_id,
            ChangeRequestRow.generation_id.in_(
                select(GenerationRow.id)
                .join(SessionRow, SessionRow.id == GenerationRow.session_id)
                .where(SessionRow.team_id == team_id)
            ),
        )
        .values(user_id=forgotten, comment="")
    )


async def anonymise_votes(db: AsyncSession, user_id: str) -> int:
    """Replace `user_id` in review votes by `FORGOTTEN_VOTE` + the vote's id: unique per
    vote, so two forgotten people's votes on one image stay two (uq_review_votes_person)
    and approval counts stay true, and no person's id ever matches it. Returns how many."""
    placeholder = FORGOTTEN_VOTE + cast(ReviewVoteRow.id, String)
    result = await db.execute(
        update(ReviewVoteRow).where(ReviewVoteRow.user_id == user_id).values(user_id=placeholder)
    )
    return int(getattr(result, "rowcount", 0) or 0)
