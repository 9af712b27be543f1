"""`/imagine forget-me`: erase one person's data from a workspace (issue 12).

`forget` runs in one transaction: in the person's own sessions and in every generation
they asked for, the prompts and replies are erased, the generated images, input
snapshots and posted images are deleted (rows, and the files no row still uses), the
person's name is replaced by `FORGOTTEN` in what remains (usage rows keep their model,
size and cost as anonymous totals; sessions, styles, change requests), their approvals
and review votes are anonymised, not removed (other people's review history stays true;
each vote gets its own placeholder, so approval counts stay true), and audit rows lose
their user id.
The bot's messages and files in those sessions are recorded for deletion in the same
transaction (`pending_deletions`), before any is deleted; `run_deletions` then deletes
them through a caller-given deleter, claiming each one first, so a restart or a second
confirmation never deletes anything twice. The messages that share the bot's files are
found through a caller-given `Sharer` and recorded the same way before the file goes.
`preview` counts what `forget` would remove.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import policy as policy_db
from core.db import privacy as repo
from core.db.privacy import FORGOTTEN, FORGOTTEN_VOTE
from core.models import (
    ApprovalRow,
    AttachmentRow,
    AuditRow,
    GenerationRow,
    GenerationState,
    ImageRow,
    SessionRow,
    StyleRow,
)
from core.ports import ChannelUnreachable, PublishError
from core.store import ImageStore

log = logging.getLogger(__name__)

CLAIM_SECONDS = 120.0  # a deletion claimed longer ago than this was left by a crashed process


def is_forgotten(user_id: str) -> bool:
    """Whether `user_id` is a placeholder of a forgotten person (`FORGOTTEN` for requests,
    sessions, approvals and usage; `FORGOTTEN_VOTE` + the vote's id for review votes); no
    platform user id has this form."""
    return user_id == FORGOTTEN or user_id.startswith(FORGOTTEN_VOTE)


@dataclass(frozen=True)
class ForgetReport:
    """What `forget` removed (counts) and the bot's Slack messages ((channel, ts)) and
    files (file ids) in those sessions, for the caller to delete."""

    sessions: int
    prompts: int
    images: int
    attachments: int
    inputs: int
    approvals_anonymised: int
    votes_anonymised: int
    messages: tuple[tuple[str, str], ...]
    files: tuple[str, ...]


async def forget(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    user_id: str,
    store: ImageStore | None = None,
) -> ForgetReport:
    """Erase `user_id`'s data in workspace `team_id` (see the module doc). Running
    generations among them are cancelled; unused files go from `store` (None: files on this
    machine). Returns the ForgetReport."""
    async with sm.begin() as db:
        own = await _own_sessions(db, team_id, user_id)
        generations = await _generations(db, team_id, user_id, own)
        messages = await _bot_messages(db, own, generations)
        images, image_paths, files = await repo.drop_images(db, generations, keep_approved=False)
        inputs, input_paths = await repo.drop_inputs(db, generations)
        attachments, attachment_paths = await repo.drop_attachments(
            db, or_(AttachmentRow.session_id.in_(own), AttachmentRow.posted_by == user_id)
        )
        prompts = await repo.blank_prompts(db, generations)
        await _anonymise(db, user_id, own, generations)
        await repo.anonymise_records(db, team_id, user_id, FORGOTTEN)
        await repo.record_deletions(db, team_id, messages, files)
        approvals = await db.execute(
            update(ApprovalRow).where(ApprovalRow.user_id == user_id).values(user_id=FORGOTTEN)
        )
        votes = await repo.anonymise_votes(db, user_id)
        report = ForgetReport(
            len(own),
            prompts,
            images,
            attachments,
            inputs,
            int(getattr(approvals, "rowcount", 0) or 0),
            votes,
            tuple(messages),
            tuple(files),
        )
        counts = {k: v for k, v in report.__dict__.items() if isinstance(v, int)}
        await policy_db.audit(db, "forget_me", team_id=team_id, detail=counts)
    await policy_db.delete_unused_files(sm, image_paths + input_paths + attachment_paths, store)
    return report


async def _own_sessions(db: AsyncSession, team_id: str, user_id: str) -> list[int]:
    """The sessions the person started in the workspace."""
    found = await db.scalars(
        select(SessionRow.id).where(
            SessionRow.team_id == team_id, SessionRow.owner_user_id == user_id
        )
    )
    return list(found.all())


async def _generations(db: AsyncSession, team_id: str, user_id: str, own: list[int]) -> list[int]:
    """The generations of the person's sessions and the ones they asked for elsewhere."""
    asked = select(GenerationRow.id).join(SessionRow, SessionRow.id == GenerationRow.session_id)
    found = await db.scalars(
        asked.where(
            SessionRow.team_id == team_id,
            or_(GenerationRow.session_id.in_(own), GenerationRow.requested_by == user_id),
        )
    )
    return list(found.all())


async def _bot_messages(
    db: AsyncSession, own: list[int], generations: list[int]
) -> list[tuple[str, str]]:
    """The bot's root, status and result messages of these sessions and generations."""
    found: list[tuple[str, str]] = []
    roots = await db.execute(
        select(SessionRow.channel_id, SessionRow.thread_ts).where(SessionRow.id.in_(own))
    )
    found += [(c, ts) for c, ts in roots.all() if ts]
    rows = await db.execute(
        select(SessionRow.channel_id, GenerationRow.status_ts, GenerationRow.result_ts)
        .join(SessionRow, SessionRow.id == GenerationRow.session_id)
        .where(GenerationRow.id.in_(generations))
    )
    for channel, status_ts, result_ts in rows.all():
        found += [(channel, ts) for ts in (result_ts, status_ts) if ts]
    return list(dict.fromkeys(found))


async def _anonymise(
    db: AsyncSession, user_id: str, own: list[int], generations: list[int]
) -> None:
    """Replace the person's id where rows stay; cancel what still runs."""
    await db.execute(
        update(GenerationRow)
        .where(GenerationRow.id.in_(generations), GenerationRow.state.in_(GenerationState.ACTIVE))
        .values(cancel_requested=True)
    )
    await db.execute(
        update(GenerationRow)
        .where(GenerationRow.id.in_(generations))
        .values(response_url=None, error=None)
    )
    await db.execute(
        update(GenerationRow)
        .where(GenerationRow.requested_by == user_id)
        .values(requested_by=FORGOTTEN)
    )
    await db.execute(
        update(SessionRow).where(SessionRow.id.in_(own)).values(owner_user_id=FORGOTTEN)
    )
    running = select(GenerationRow.session_id).where(
        GenerationRow.state.in_(GenerationState.ACTIVE)
    )
    await db.execute(  # a finished thread is let go: replies in it are no longer taken
        update(SessionRow)
        .where(SessionRow.id.in_(own), SessionRow.id.not_in(running))
        .values(thread_ts=None)
    )
    await db.execute(
        update(StyleRow).where(StyleRow.created_by == user_id).values(created_by=FORGOTTEN)
    )
    await db.execute(update(AuditRow).where(AuditRow.user_id == user_id).values(user_id=None))


@dataclass(frozen=True)
class ForgetPreview:
    """What `forget` would remove now (counts): the person's sessions, the generations
    they asked for or that are in their sessions, those generations' images, and the
    images they posted."""

    sessions: int
    generations: int
    images: int
    attachments: int

    @property
    def empty(self) -> bool:
        """Whether there is nothing to forget."""
        return not (self.sessions or self.generations or self.images or self.attachments)


async def preview(
    sm: async_sessionmaker[AsyncSession], team_id: str, user_id: str
) -> ForgetPreview:
    """Count what `forget(sm, team_id, user_id)` would remove (read only)."""
    async with sm() as db:
        own = await _own_sessions(db, team_id, user_id)
        generations = await _generations(db, team_id, user_id, own)
        images = await db.scalar(
            select(func.count()).where(ImageRow.generation_id.in_(generations))
        )
        attachments = await db.scalar(
            select(func.count()).where(
                or_(AttachmentRow.session_id.in_(own), AttachmentRow.posted_by == user_id)
            )
        )
    return ForgetPreview(len(own), len(generations), int(images or 0), int(attachments or 0))


@dataclass(frozen=True)
class Deletion:
    """One of the bot's platform messages (`kind` "message", in `channel_id`, `ref` its
    ts) or files (`kind` "file", `ref` its id) to delete."""

    kind: str
    channel_id: str
    ref: str


Deleter = Callable[[Deletion], Awaitable[str]]
"""Deletes one Deletion on the platform; returns "deleted", "gone" (already deleted) or
the platform's refusal code; raises core.ports.PublishError when a later try may work."""


@dataclass(frozen=True)
class DeletionCounts:
    """What one `run_deletions` did: deleted, already gone, refused, left for a later try."""

    deleted: int = 0
    gone: int = 0
    refused: int = 0
    retry: int = 0


Sharer = Callable[[str], Awaitable[list[tuple[str, str]]]]
"""The platform messages ((channel id, ts)) that share one of the bot's files ([] when the
file is gone); raises core.ports.PublishError when a later try may work. On Slack a file's
share message stays when the file is deleted (it shows the file as a tombstone), so it is
deleted as a message of its own."""


async def run_deletions(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    delete: Deleter,
    shares: Sharer | None = None,
) -> DeletionCounts:
    """Make the recorded deletions of `team_id` that are not done, each claimed in its own
    transaction before `delete` is called and marked done after it (a refusal is done
    too: no later try would work; ChannelUnreachable counts as a refusal). A deletion that
    another caller claimed within CLAIM_SECONDS is left to it. With `shares`, the messages
    that share each due file are recorded for deletion first; a file whose shares could
    not be read is left for a later try (counted in `retry`). Returns the counts."""
    async with sm() as db:
        due = await repo.due_deletions(db, team_id, await repo.db_clock(db) - CLAIM_SECONDS)
    tally = {"deleted": 0, "gone": 0, "refused": 0, "retry": 0}
    if shares is not None:
        held = await _record_shares(sm, team_id, [d for d in due if d[1] == "file"], shares)
        tally["retry"] = len(held)
        async with sm() as db:
            due = await repo.due_deletions(db, team_id, await repo.db_clock(db) - CLAIM_SECONDS)
        due = [d for d in due if d[0] not in held]
    for deletion_id, kind, channel_id, ref in due:
        async with sm.begin() as db:
            stale = await repo.db_clock(db) - CLAIM_SECONDS
            if not await repo.claim_deletion(db, deletion_id, stale):
                continue
        outcome: str | None
        try:
            outcome = await delete(Deletion(kind, channel_id, ref))
        except ChannelUnreachable as err:
            outcome = err.reason
        except PublishError as err:
            log.warning("deleting a %s failed, to be tried again: %s", kind, err)
            outcome = None
        async with sm.begin() as db:
            await repo.finish_deletion(db, deletion_id, outcome)
        key = "retry" if outcome is None else outcome if outcome in tally else "refused"
        tally[key] += 1
    return DeletionCounts(**tally)


async def _record_shares(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    files: list[tuple[int, str, str, str]],
    shares: Sharer,
) -> set[int]:
    """Record the share messages of these due file deletions ((id, kind, channel, file
    id)) for deletion, each file's in its own transaction, before the file is deleted;
    returns the ids of the file deletions whose shares could not be read now."""
    held: set[int] = set()
    for deletion_id, _, _, file_id in files:
        try:
            found = await shares(file_id)
        except ChannelUnreachable:
            continue  # the deletion itself will record the refusal
        except PublishError as err:
            log.warning("reading a file's shares failed, to be tried again: %s", err)
            held.add(deletion_id)
            continue
        try:
            async with sm.begin() as db:
                await repo.record_deletions(db, team_id, found, [])
        except IntegrityError:
            pass  # a concurrent run recorded them first
    return held
