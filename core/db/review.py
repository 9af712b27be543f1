"""Team review persistence: policies, votes, change requests, gallery intents, the audit
log. Named queries and writes over an open `AsyncSession` (the use case owns the
transaction), plain data in and out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import (
    AuditRow,
    ChangeRequestRow,
    GalleryPostRow,
    GenerationRow,
    ImageRow,
    ReviewPolicyRow,
    ReviewVoteRow,
    db_now,
)
from core.policy import DEFAULT_POLICY, Policy
from core.ports import GenerationView

# Built once, values bound when they run (issue 13: every job's view reads them).
_POLICY = select(ReviewPolicyRow).where(
    ReviewPolicyRow.team_id == bindparam("team_id"),
    ReviewPolicyRow.channel_id == bindparam("channel_id"),
)
_CHANGES = (
    select(ChangeRequestRow.image_index, ChangeRequestRow.user_id)
    .where(ChangeRequestRow.generation_id == bindparam("generation_id"))
    .order_by(ChangeRequestRow.id)
)


async def get_policy(db: AsyncSession, team_id: str, channel_id: str) -> Policy:
    """The channel's policy, or DEFAULT_POLICY when none is stored."""
    row = await db.scalar(_POLICY, {"team_id": team_id, "channel_id": channel_id})
    if row is None:
        return DEFAULT_POLICY
    return Policy(
        tuple(row.reviewer_users),
        tuple(row.reviewer_groups),
        row.approvals_required,
        row.self_approval,
        row.gallery_channel_id,
    )


async def put_policy(
    db: AsyncSession, team_id: str, channel_id: str, policy: Policy, user_id: str
) -> None:
    """Store (insert or replace) the channel's policy."""
    values: dict[str, Any] = {
        "reviewer_users": list(policy.reviewer_users),
        "reviewer_groups": list(policy.reviewer_groups),
        "approvals_required": policy.approvals_required,
        "self_approval": policy.self_approval,
        "gallery_channel_id": policy.gallery_channel_id,
        "updated_by": user_id,
    }
    found = await db.execute(
        update(ReviewPolicyRow)
        .where(ReviewPolicyRow.team_id == team_id, ReviewPolicyRow.channel_id == channel_id)
        .values(**values, updated_at=db_now())
    )
    if not found.rowcount:  # type: ignore[attr-defined]
        db.add(ReviewPolicyRow(team_id=team_id, channel_id=channel_id, **values))
        await db.flush()


async def delete_policy(db: AsyncSession, team_id: str, channel_id: str) -> bool:
    """Remove the channel's policy (back to the default); True when there was one."""
    result = await db.execute(
        delete(ReviewPolicyRow).where(
            ReviewPolicyRow.team_id == team_id, ReviewPolicyRow.channel_id == channel_id
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def lock_image(db: AsyncSession, image_id: int) -> None:
    """Lock an image's row for the rest of the transaction, so concurrent approvals of one
    image are judged and counted in turn: a no-op UPDATE takes PostgreSQL's row lock and
    SQLite's write lock before anything is read (a SELECT … FOR UPDATE would be ignored by
    SQLite)."""
    await db.execute(update(ImageRow).where(ImageRow.id == image_id).values(index=ImageRow.index))


async def add_vote(db: AsyncSession, image_id: int, user_id: str) -> bool:
    """Record `user_id`'s approval of an image; False when that person already approved it
    (uq_review_votes_person: a double click or a concurrent one counts once)."""
    exists = await db.scalar(
        select(ReviewVoteRow.id).where(
            ReviewVoteRow.image_id == image_id, ReviewVoteRow.user_id == user_id
        )
    )
    if exists is not None:
        return False
    try:
        async with db.begin_nested():
            db.add(ReviewVoteRow(image_id=image_id, user_id=user_id))
    except IntegrityError:
        return False
    return True


async def votes(db: AsyncSession, image_ids: list[int]) -> dict[int, list[tuple[str, float]]]:
    """{image id: [(user id, voted at), …] oldest first} for the given images."""
    out: dict[int, list[tuple[str, float]]] = {image: [] for image in image_ids}
    if not image_ids:
        return out
    rows = await db.execute(
        select(ReviewVoteRow.image_id, ReviewVoteRow.user_id, ReviewVoteRow.voted_at)
        .where(ReviewVoteRow.image_id.in_(image_ids))
        .order_by(ReviewVoteRow.voted_at, ReviewVoteRow.id)
    )
    for image, user, at in rows:
        out[image].append((user, at))
    return out


@dataclass(frozen=True)
class GalleryJob:
    """A gallery post to make: the intent row, the image, and where it goes."""

    post_id: int
    image_id: int
    generation_id: int
    channel_id: str
    approver: str
    resumed: bool  # an earlier try (crashed or refused) may have posted: look for it first
    attempts: int = 0  # refused tries so far


async def add_gallery_intent(
    db: AsyncSession, image_id: int, channel_id: str, approver: str
) -> int:
    """Record that an image is to be published to `channel_id` (before posting); returns the
    intent's id. An image has at most one (unique image_id)."""
    row = GalleryPostRow(image_id=image_id, channel_id=channel_id, approver=approver)
    db.add(row)
    await db.flush()
    return row.id


async def claim_gallery(db: AsyncSession, image_id: int, stale_seconds: float) -> GalleryJob | None:
    """Take the image's gallery intent for posting: a pending one, or one claimed more than
    `stale_seconds` ago by a process that did not finish (crashed; `resumed` is then True,
    and the post may exist already). None when there is none to take (already posted,
    unreachable, or another process is posting it now)."""
    row = await db.scalar(select(GalleryPostRow).where(GalleryPostRow.image_id == image_id))
    if row is None:
        return None
    resumed = row.state == "posting" or row.attempts > 0  # an earlier try may have landed
    claimed = await db.execute(
        update(GalleryPostRow)
        .where(
            GalleryPostRow.id == row.id,
            GalleryPostRow.state == row.state,
            _gallery_due(stale_seconds),
        )
        .values(state="posting", claimed_at=db_now())
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    generation = await db.scalar(select(ImageRow.generation_id).where(ImageRow.id == image_id))
    return GalleryJob(
        row.id, image_id, int(generation or 0), row.channel_id, row.approver, resumed, row.attempts
    )


async def finish_gallery(db: AsyncSession, post_id: int, state: str, ts: str | None) -> bool:
    """Mark a gallery intent posted (with the message's ts) or unreachable; False when the
    intent is gone (its image was deleted meanwhile: it goes with it)."""
    result = await db.execute(
        update(GalleryPostRow)
        .where(GalleryPostRow.id == post_id)
        .values(state=state, message_ts=ts)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def _gallery_due(stale_seconds: float) -> Any:
    """A gallery intent to take now: pending and due (no due time, or it has come), or
    claimed more than `stale_seconds` ago by a process that did not finish."""
    return or_(
        (GalleryPostRow.state == "pending")
        & (GalleryPostRow.next_attempt_at.is_(None) | (GalleryPostRow.next_attempt_at <= db_now())),
        (GalleryPostRow.state == "posting")
        & (GalleryPostRow.claimed_at < db_now() - stale_seconds),
    )


async def open_gallery_images(db: AsyncSession, stale_seconds: float) -> list[int]:
    """Images whose gallery post is due: pending (its retry time come) or stuck in a stale
    claim, oldest first."""
    rows = await db.scalars(
        select(GalleryPostRow.image_id)
        .where(_gallery_due(stale_seconds))
        .order_by(GalleryPostRow.id)
    )
    return list(rows)


async def retry_gallery(
    db: AsyncSession, post_id: int, *, attempts: int, error: str, delay: float, give_up: bool
) -> None:
    """Record a refused gallery post (`error`: the platform's code) as try number
    `attempts`: back to pending, due in `delay` seconds, or "unreachable" when `give_up`."""
    await db.execute(
        update(GalleryPostRow)
        .where(GalleryPostRow.id == post_id)
        .values(
            state="unreachable" if give_up else "pending",
            attempts=attempts,
            next_attempt_at=db_now() + delay,
            last_error=error[:64],
            claimed_at=None,
        )
    )


async def gallery_state(db: AsyncSession, image_id: int) -> tuple[str, str | None] | None:
    """(state, message ts) of an image's gallery intent, or None."""
    row = (
        await db.execute(
            select(GalleryPostRow.state, GalleryPostRow.message_ts).where(
                GalleryPostRow.image_id == image_id
            )
        )
    ).first()
    return (row[0], row[1]) if row else None


async def add_change_request(
    db: AsyncSession, generation_id: int, index: int, user_id: str, comment: str
) -> int:
    """Record a change request on image `index` of a generation; returns its id."""
    row = ChangeRequestRow(
        generation_id=generation_id, image_index=index, user_id=user_id, comment=comment
    )
    db.add(row)
    await db.flush()
    return row.id


async def link_change_request(db: AsyncSession, request_id: int, new_generation_id: int) -> None:
    """Remember which version a change request became."""
    await db.execute(
        update(ChangeRequestRow)
        .where(ChangeRequestRow.id == request_id)
        .values(new_generation_id=new_generation_id)
    )


async def changes_requested(db: AsyncSession, generation_id: int) -> list[tuple[int, str]]:
    """[(image index, user id)] of the change requests on a generation, oldest first."""
    rows = await db.execute(_CHANGES, {"generation_id": generation_id})
    return [(index, user) for index, user in rows]


@dataclass(frozen=True)
class AuditEntry:
    """One audit row as plain data (times in UTC epoch seconds)."""

    at: float
    team_id: str
    channel_id: str
    user_id: str
    action: str
    generation_id: int | None
    image_id: int | None
    detail: dict[str, Any]
    policy: dict[str, Any]


async def add_audit(
    db: AsyncSession,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    action: str,
    policy: Policy,
    generation_id: int | None = None,
    image_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an audit row (who, what, which generation/image, the policy in force)."""
    db.add(
        AuditRow(
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            action=action,
            generation_id=generation_id,
            image_id=image_id,
            detail=detail or {},
            policy=policy.to_json(),
        )
    )
    await db.flush()


async def audit_entries(
    db: AsyncSession, since: float | None, channel_id: str | None
) -> list[AuditEntry]:
    """Audit rows, oldest first, optionally from `since` (epoch seconds) and one channel."""
    query = select(AuditRow).order_by(AuditRow.at, AuditRow.id)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    if channel_id:
        query = query.where(AuditRow.channel_id == channel_id)
    return [
        AuditEntry(
            r.at,
            r.team_id,
            r.channel_id,
            r.user_id,
            r.action,
            r.generation_id,
            r.image_id,
            dict(r.detail),
            dict(r.policy),
        )
        for r in await db.scalars(query)
    ]


async def generation_of_image(db: AsyncSession, image_id: int) -> tuple[int, int] | None:
    """(generation id, image index) of an image, or None."""
    row = (
        await db.execute(
            select(ImageRow.generation_id, ImageRow.index).where(ImageRow.id == image_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def version_lineage(db: AsyncSession, generation_id: int) -> list[int]:
    """The version numbers from the first version to this one (following parents)."""
    chain: list[int] = []
    current: int | None = generation_id
    while current is not None and len(chain) < 100:
        row = await db.get(GenerationRow, current)
        if row is None:
            break
        chain.append(row.version)
        current = row.parent_generation_id
        if current is None and row.parent_image_id is not None:
            current = await db.scalar(
                select(ImageRow.generation_id).where(ImageRow.id == row.parent_image_id)
            )
    return list(reversed(chain))


async def with_review(db: AsyncSession, view: GenerationView) -> GenerationView:
    """`view` with its review state: the channel's policy, each image's votes and the
    change requests on the generation."""
    policy = await get_policy(db, view.team_id, view.channel_id)
    found = await votes(db, [image.image_id for image in view.images])
    images = tuple(
        replace(image, votes=tuple(user for user, _ in found[image.image_id]))
        for image in view.images
    )
    changes = tuple(await changes_requested(db, view.generation_id))
    return replace(view, review=policy, images=images, changes_requested=changes)


async def newest_generation_by(
    db: AsyncSession, session_id: int, user_id: str, after_id: int
) -> int | None:
    """The newest generation of a session asked for by `user_id` with an id above
    `after_id`, or None."""
    return await db.scalar(
        select(GenerationRow.id)
        .where(
            GenerationRow.session_id == session_id,
            GenerationRow.requested_by == user_id,
            GenerationRow.id > after_id,
        )
        .order_by(GenerationRow.id.desc())
        .limit(1)
    )
