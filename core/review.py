"""Use cases of team review (issue 10): a channel's review policy, change requests, the
gallery post of a fully approved image, the audit export and what App Home lists.

Approvals themselves are `core.sessions.approve` (judged by `core.policy.judge`). Each
use case is one transaction over plain data; every change is an audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import privacy as privacy_db
from core.db import refinement as threads
from core.db import review as review_db
from core.db import sessions as sessions_db
from core.db.refinement import SessionRef
from core.db.review import AuditEntry, GalleryJob
from core.db.views import load_view
from core.policy import DEFAULT_POLICY, Policy, PolicyInvalid, validate
from core.ports import GenerationView
from core.schedule import backoff
from core.sessions import ActionRefused, Conversation, Refusal, check_target

__all__ = [
    "DEFAULT_POLICY",
    "GALLERY_STALE_SECONDS",
    "AuditEntry",
    "ChangeRequest",
    "GalleryItem",
    "GalleryJob",
    "GalleryRefused",
    "GalleryRetry",
    "Policy",
    "PolicyInvalid",
    "audit_export",
    "claim_gallery",
    "finish_gallery",
    "gallery_item",
    "gallery_refused",
    "get_policy",
    "link_change",
    "open_gallery_posts",
    "request_changes",
    "reset_policy",
    "set_policy",
]

# A gallery post claimed longer ago than this by a process that never finished it (it
# crashed) may be taken again; the publisher first looks for the post it may have made.
GALLERY_STALE_SECONDS = 60.0


@dataclass(frozen=True)
class PolicyChange:
    """What a policy change did: the policy before and after (after = DEFAULT_POLICY when
    review was switched off)."""

    before: Policy
    after: Policy


async def get_policy(sm: async_sessionmaker[AsyncSession], team_id: str, channel_id: str) -> Policy:
    """The channel's review policy (DEFAULT_POLICY, `is_default`, when none is set)."""
    async with sm() as db:
        return await review_db.get_policy(db, team_id, channel_id)


async def set_policy(
    sm: async_sessionmaker[AsyncSession],
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    policy: Policy,
) -> PolicyChange:
    """Validate and store a channel's policy, with an audit row ("policy_set", before and
    after). The caller has checked that `user_id` is an admin. Raises PolicyInvalid."""
    policy = validate(policy, channel_id)
    async with sm.begin() as db:
        before = await review_db.get_policy(db, team_id, channel_id)
        await review_db.put_policy(db, team_id, channel_id, policy, user_id)
        await review_db.add_audit(
            db,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            action="policy_set",
            policy=policy,
            detail={"before": before.to_json(), "after": policy.to_json()},
        )
    return PolicyChange(before, policy)


async def reset_policy(
    sm: async_sessionmaker[AsyncSession], *, team_id: str, channel_id: str, user_id: str
) -> PolicyChange:
    """Switch review off for a channel (back to the default), with an audit row
    ("policy_off"). The caller has checked that `user_id` is an admin."""
    async with sm.begin() as db:
        before = await review_db.get_policy(db, team_id, channel_id)
        await review_db.delete_policy(db, team_id, channel_id)
        await review_db.add_audit(
            db,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            action="policy_off",
            policy=DEFAULT_POLICY,
            detail={"before": before.to_json()},
        )
    return PolicyChange(before, DEFAULT_POLICY)


async def claim_gallery(sm: async_sessionmaker[AsyncSession], image_id: int) -> GalleryJob | None:
    """Take an image's recorded gallery post for publishing (see `review_db.claim_gallery`):
    None when it is posted, unreachable, or being posted by someone else right now."""
    async with sm.begin() as db:
        return await review_db.claim_gallery(db, image_id, GALLERY_STALE_SECONDS)


@dataclass(frozen=True)
class GalleryItem:
    """A claimed gallery post with what it shows: the generation, the image's index in it
    (0-based) and the version lineage (version numbers, first to this one)."""

    job: GalleryJob
    view: GenerationView
    index: int
    lineage: tuple[int, ...]


async def gallery_item(sm: async_sessionmaker[AsyncSession], job: GalleryJob) -> GalleryItem:
    """Read what a claimed gallery post shows. Raises GenerationGone."""
    async with sm() as db:
        view = await load_view(db, job.generation_id)
        lineage = tuple(await review_db.version_lineage(db, job.generation_id))
    index = next(i.index for i in view.images if i.image_id == job.image_id)
    return GalleryItem(job, view, index, lineage)


async def finish_gallery(
    sm: async_sessionmaker[AsyncSession],
    job: GalleryJob,
    *,
    team_id: str,
    ts: str | None,
    unreachable: str | None = None,
) -> bool:
    """Record the outcome of a gallery post: posted at `ts`, or `unreachable` (the
    platform's code, e.g. "not_in_channel"); audited as "published" / "publish_failed".
    Returns False when the intent is gone because its image was deleted meanwhile
    (forget-me): a post made at `ts` is then recorded for deletion
    (`core.db.privacy.record_deletions`, for the caller to run) and not audited."""
    async with sm.begin() as db:
        state = "posted" if unreachable is None else "unreachable"
        found = await review_db.finish_gallery(db, job.post_id, state, ts)
        if not found and ts is not None:
            await privacy_db.record_deletions(db, team_id, [(job.channel_id, ts)], [])
            return False
        detail: dict[str, Any] = {"gallery": job.channel_id, "ts": ts}
        if unreachable is not None:
            detail = {"gallery": job.channel_id, "error": unreachable}
        action = "published" if unreachable is None else "publish_failed"
        await _audit_gallery(db, job, team_id, action, detail)
    return found


async def _audit_gallery(
    db: AsyncSession, job: GalleryJob, team_id: str, action: str, detail: dict[str, Any]
) -> None:
    """An audit row about a gallery post, in the image's own channel, by its approver."""
    found = await sessions_db.target(db, job.generation_id)
    channel_id = found.channel_id if found else job.channel_id
    await review_db.add_audit(
        db,
        team_id=team_id,
        channel_id=channel_id,
        user_id=job.approver,
        action=action,
        policy=await review_db.get_policy(db, team_id, channel_id),
        generation_id=job.generation_id,
        image_id=job.image_id,
        detail=detail,
    )


@dataclass(frozen=True)
class GalleryRetry:
    """How gallery posts are retried (from the settings): the first delay and the cap
    (seconds), and how many tries before giving up."""

    first_seconds: float = 30.0
    max_seconds: float = 3600.0
    max_attempts: int = 30


@dataclass(frozen=True)
class GalleryRefused:
    """A refused gallery post as recorded: the try number (1 = the first refusal), the
    seconds until the next try, and whether it was given up."""

    attempts: int
    delay: float
    gave_up: bool


async def gallery_refused(
    sm: async_sessionmaker[AsyncSession],
    job: GalleryJob,
    *,
    team_id: str,
    error: str,
    retry_after: float | None,
    retry: GalleryRetry,
) -> GalleryRefused:
    """Record that the platform refused a claimed gallery post (`error`: its code, e.g.
    "not_in_channel", "ratelimited"): the approval stands, the post is due again after a
    backoff (at least `retry_after` seconds) or given up after `retry.max_attempts` tries.
    The first refusal and the giving up are audited ("publish_failed")."""
    attempts = job.attempts + 1
    delay = backoff(attempts, retry.first_seconds, retry.max_seconds, retry_after)
    gave_up = attempts >= retry.max_attempts
    async with sm.begin() as db:
        await review_db.retry_gallery(
            db, job.post_id, attempts=attempts, error=error, delay=delay, give_up=gave_up
        )
        if attempts == 1 or gave_up:
            detail = {"gallery": job.channel_id, "error": error, "attempts": attempts}
            await _audit_gallery(
                db, job, team_id, "publish_failed", detail | {"retrying": not gave_up}
            )
    return GalleryRefused(attempts, delay, gave_up)


async def open_gallery_posts(sm: async_sessionmaker[AsyncSession]) -> list[int]:
    """Image ids whose gallery post was recorded but never finished (resume at start)."""
    async with sm() as db:
        return await review_db.open_gallery_images(db, GALLERY_STALE_SECONDS)


async def audit_export(
    sm: async_sessionmaker[AsyncSession], *, since: float | None, channel_id: str | None
) -> list[AuditEntry]:
    """The audit trail, oldest first, from `since` (UTC epoch seconds) in one channel."""
    async with sm() as db:
        return await review_db.audit_entries(db, since, channel_id)


@dataclass(frozen=True)
class ChangeRequest:
    """A recorded change request: its id, the session (thread) the comment goes to as the
    next version, the label of the image it changes ("v1 image 1") and the old version as
    it is now (its review state shows "changes requested")."""

    request_id: int
    session: SessionRef
    label: str
    view: GenerationView


MAX_COMMENT_CHARS = 3000  # the modal's plain_text_input max_length


async def request_changes(
    sm: async_sessionmaker[AsyncSession],
    generation_id: int,
    index: int,
    user_id: str,
    where: Conversation,
    comment: str,
) -> ChangeRequest:
    """Record `user_id`'s change request on image `index` (0-based) of a generation: the
    image becomes the session's base (the comment refines it, as a reply after "Refine
    this" would), the request is stored and audited ("changes_requested"). The caller then
    takes the comment as the thread's next reply. Raises ActionRefused (GONE,
    WRONG_CONVERSATION) and ValueError for an empty or too long comment."""
    comment = comment.strip()
    if not comment or len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"a comment of 1 to {MAX_COMMENT_CHARS} characters")
    async with sm.begin() as db:
        found = await check_target(db, generation_id, where)
        picked = await threads.set_base(db, generation_id, index)
        session = await threads.session_ref(db, picked[0]) if picked else None
        if picked is None or session is None:
            raise ActionRefused(Refusal.GONE)
        request_id = await review_db.add_change_request(db, generation_id, index, user_id, comment)
        image = await sessions_db.image_id(db, generation_id, index)
        await review_db.add_audit(
            db,
            team_id=found.team_id,
            channel_id=found.channel_id,
            user_id=user_id,
            action="changes_requested",
            policy=await review_db.get_policy(db, found.team_id, found.channel_id),
            generation_id=generation_id,
            image_id=image,
            detail={"image": index + 1, "comment": comment},
        )
        view = await load_view(db, generation_id)
    return ChangeRequest(request_id, session, picked[1], view)


async def link_change(
    sm: async_sessionmaker[AsyncSession], request: ChangeRequest, user_id: str
) -> int | None:
    """Record which version a change request became: the session's newest version asked
    for by `user_id` after the request (None when the comment queued nothing)."""
    async with sm.begin() as db:
        newest = await review_db.newest_generation_by(
            db, request.session.session_id, user_id, request.view.generation_id
        )
        if newest is not None:
            await review_db.link_change_request(db, request.request_id, newest)
        return newest
