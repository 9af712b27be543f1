"""`/imagine forget-me`: erase one person's data from a workspace (issue 12).

`forget` runs in one transaction: in the person's own sessions and in every generation
they asked for, the prompts and replies are erased, the generated images, input
snapshots and posted images are deleted (rows, and the files no row still uses), the
person's name is replaced by `FORGOTTEN` in what remains (usage rows keep their model,
size and cost as anonymous totals; sessions, styles, change requests), their approvals
and review votes are anonymised, not removed (other people's review history stays true;
each vote gets its own placeholder, so approval counts stay true), and audit rows lose
their user id.
The bot's messages and files in those sessions, and the gallery posts of the generations'
images, are recorded for deletion in the same transaction (`pending_deletions`), before
any is deleted; `run_deletions` then deletes them through a caller-given deleter, claiming
each one first, so a restart or a second confirmation never deletes anything twice. The
messages that share the bot's files are found through a caller-given `Sharer` and recorded
the same way before the file goes.
Running generations among them are cancelled the way the Cancel button does
(`core.db.sessions.request_cancel`; the caller wakes the engine), so they post nothing more;
`settle` then waits for them to stop and erases what a step under way at the time posted.
Their requests acknowledged and not started yet that are stored in the intake's inbox
(core.intake: after a crash, until the next start) are dropped, so the next start does
not begin them.
`preview` counts what `forget` would remove.
The queries and writes are in `core.db.forget` and `core.db.privacy`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import forget as repo
from core.db import inbox as inbox_db
from core.db import policy as policy_db
from core.db import privacy as privacy_db
from core.db import sessions as sessions_db
from core.db.privacy import FORGOTTEN, FORGOTTEN_VOTE
from core.ports import ChannelUnreachable, PublishError
from core.store import ImageStore

log = logging.getLogger(__name__)

CLAIM_SECONDS = 120.0  # a deletion claimed longer ago than this was left by a crashed process
STOP_SECONDS = 10.0  # how long `settle` waits for cancelled generations to leave the engine
STOP_POLL_SECONDS = 0.1  # how often it looks


def is_forgotten(user_id: str) -> bool:
    """Whether `user_id` is a placeholder of a forgotten person (`FORGOTTEN` for requests,
    sessions, approvals and usage; `FORGOTTEN_VOTE` + the vote's id for review votes); no
    platform user id has this form."""
    return user_id == FORGOTTEN or user_id.startswith(FORGOTTEN_VOTE)


@dataclass(frozen=True)
class ForgetReport:
    """What `forget` removed (counts), the bot's Slack messages ((channel, ts): the
    sessions' messages and the gallery posts of their images) and files (file ids) it
    recorded for deletion, the ids of the running generations it cancelled (the caller
    wakes the job engine for them), and how many requests not started yet it dropped."""

    sessions: int
    prompts: int
    images: int
    attachments: int
    inputs: int
    approvals_anonymised: int
    votes_anonymised: int
    messages: tuple[tuple[str, str], ...]
    files: tuple[str, ...]
    stopped: tuple[int, ...] = ()
    waiting: int = 0  # requests stored and not started yet (core.intake), dropped


async def forget(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    user_id: str,
    store: ImageStore | None = None,
) -> ForgetReport:
    """Erase `user_id`'s data in workspace `team_id` (see the module doc). Their running
    generations are cancelled as the Cancel button does (`report.stopped`: the caller wakes
    the job engine); unused files go from `store` (None: files on this machine). Returns
    the ForgetReport."""
    async with sm.begin() as db:
        own = await repo.own_sessions(db, team_id, user_id)
        generations = await repo.generations_of(db, team_id, user_id, own)
        messages = await repo.bot_messages(db, own, generations)
        messages += await repo.gallery_messages(db, generations)  # before their images go
        stopped = await repo.active_generations(db, generations)
        for generation_id in stopped:
            await sessions_db.request_cancel(db, generation_id)
        images, image_paths, files = await privacy_db.drop_images(
            db, generations, keep_approved=False
        )
        inputs, input_paths = await privacy_db.drop_inputs(db, generations)
        attachments, attachment_paths = await privacy_db.drop_attachments(db, own, user_id)
        prompts = await privacy_db.blank_prompts(db, generations)
        await repo.anonymise(db, user_id, FORGOTTEN, own, generations)
        await privacy_db.anonymise_records(db, team_id, user_id, FORGOTTEN)
        await privacy_db.record_deletions(db, team_id, messages, files)
        approvals = await repo.anonymise_approvals(db, user_id, FORGOTTEN)
        votes = await privacy_db.anonymise_votes(db, user_id)
        waiting = len(await inbox_db.take(db, await inbox_db.of_person(db, team_id, user_id)))
        report = ForgetReport(
            len(own),
            prompts,
            images,
            attachments,
            inputs,
            approvals,
            votes,
            tuple(messages),
            tuple(files),
            tuple(stopped),
            waiting,
        )
        counts = {k: v for k, v in report.__dict__.items() if isinstance(v, int)}
        await policy_db.audit(db, "forget_me", team_id=team_id, detail=counts)
    await policy_db.delete_unused_files(sm, image_paths + input_paths + attachment_paths, store)
    return report


async def settle(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    stopped: Sequence[int],
    store: ImageStore | None = None,
    *,
    within: float = STOP_SECONDS,
) -> int:
    """After `forget`: wait up to `within` seconds for its cancelled generations `stopped`
    (`ForgetReport.stopped`; the caller woke the engine) to leave the job engine, then
    erase what a step under way at the time stored or posted: their messages and files
    (from the engine's side-effect records and the rows) are recorded for deletion (those
    recorded already are skipped), their images deleted, the forgotten sessions' threads
    with nothing running let go. Returns how many of `stopped` still ran at the end of the
    wait (0 normally; a step of theirs may then still post)."""
    if not stopped:
        return 0
    deadline = time.monotonic() + within
    while True:
        async with sm() as db:
            running = await repo.active_generations(db, stopped)
        if not running or time.monotonic() >= deadline:
            break
        await asyncio.sleep(STOP_POLL_SECONDS)
    async with sm.begin() as db:
        messages, files = await repo.posted_by_jobs(db, stopped)
        _images, paths, image_files = await privacy_db.drop_images(db, stopped, keep_approved=False)
        await repo.release_threads(db, stopped, FORGOTTEN)
        await privacy_db.record_deletions(db, team_id, messages, [*files, *image_files])
    await policy_db.delete_unused_files(sm, paths, store)
    if running:
        log.warning("forget-me: %d cancelled generations still ran after %ss", len(running), within)
    return len(running)


@dataclass(frozen=True)
class ForgetPreview:
    """What `forget` would remove now (counts): the person's sessions, the generations
    they asked for or that are in their sessions, those generations' images, the images
    they posted, the gallery posts of those generations' images (deleted from the gallery
    channel too), how many of the generations still run (they are cancelled) and how many
    of their requests wait to be started (they are dropped)."""

    sessions: int
    generations: int
    images: int
    attachments: int
    gallery_posts: int = 0
    running: int = 0
    waiting: int = 0  # requests acknowledged and not started yet (the intake's inbox)

    @property
    def empty(self) -> bool:
        """Whether there is nothing to forget."""
        return not (
            self.sessions or self.generations or self.images or self.attachments or self.waiting
        )


async def preview(
    sm: async_sessionmaker[AsyncSession], team_id: str, user_id: str
) -> ForgetPreview:
    """Count what `forget(sm, team_id, user_id)` would remove (read only)."""
    async with sm() as db:
        own = await repo.own_sessions(db, team_id, user_id)
        generations = await repo.generations_of(db, team_id, user_id, own)
        images = await repo.count_images(db, generations)
        attachments = await repo.count_attachments(db, own, user_id)
        gallery = len(await repo.gallery_messages(db, generations))
        running = len(await repo.active_generations(db, generations))
        waiting = len(await inbox_db.of_person(db, team_id, user_id))
    return ForgetPreview(len(own), len(generations), images, attachments, gallery, running, waiting)


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
    """What one `run_deletions` did (counts of deletions)."""

    deleted: int = 0  # deleted on the platform now
    gone: int = 0  # already deleted there
    refused: int = 0  # refused (or the channel is unreachable): not tried again
    retry: int = 0  # failed for now (or a file whose shares were unreadable): a later try


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
        due = await privacy_db.due_deletions(
            db, team_id, await privacy_db.db_clock(db) - CLAIM_SECONDS
        )
    tally = {"deleted": 0, "gone": 0, "refused": 0, "retry": 0}
    if shares is not None:
        held = await _record_shares(sm, team_id, [d for d in due if d[1] == "file"], shares)
        tally["retry"] = len(held)
        async with sm() as db:
            due = await privacy_db.due_deletions(
                db, team_id, await privacy_db.db_clock(db) - CLAIM_SECONDS
            )
        due = [d for d in due if d[0] not in held]
    for deletion_id, kind, channel_id, ref in due:
        async with sm.begin() as db:
            stale = await privacy_db.db_clock(db) - CLAIM_SECONDS
            if not await privacy_db.claim_deletion(db, deletion_id, stale):
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
            await privacy_db.finish_deletion(db, deletion_id, outcome)
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
        await repo.record_deletions_apart(sm, team_id, found, [])
    return held
