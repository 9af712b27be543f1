"""Retention (RETENTION_DAYS) and the daily task that applies it.

`sweep` deletes the stored images (all but approved ones), input snapshots, posted
attachments and prompts of sessions with no activity for `days` days, never touching a
session with a running generation; it prunes processed Slack deliveries older than a day
and records the counts in the audit trail. `RetentionTask` runs it once a day in the
server. Times are UTC epoch seconds; `now` is injected so tests can move the clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import policy as policy_db
from core.db import privacy as repo
from core.periodic import Periodic
from core.store import ImageStore

log = logging.getLogger(__name__)

DAY = 86_400.0
DELIVERY_KEEP_SECONDS = DAY  # Slack retries within minutes; a day is plenty


@dataclass(frozen=True)
class SweepReport:
    """What one sweep deleted (counts)."""

    sessions: int = 0  # stale sessions swept
    images: int = 0  # image rows deleted (approved ones are kept)
    inputs: int = 0  # input snapshots deleted
    attachments: int = 0  # images posted in threads, deleted
    prompts: int = 0  # generations whose prompt was blanked
    files: int = 0  # files deleted from the image store (no row uses them any more)
    deliveries: int = 0  # processed Slack deliveries pruned (older than a day)


async def sweep(
    sm: async_sessionmaker[AsyncSession],
    days: float | None,
    now: float | None = None,
    store: ImageStore | None = None,
) -> SweepReport:
    """Apply retention at time `now` (default: the wall clock). `days` None keeps session
    data (only old deliveries are pruned). Returns the counts, also written to the audit
    trail (action "retention"). Files go from `store` (None: files on this machine)."""
    now = time.time() if now is None else now
    async with sm.begin() as db:
        deliveries = await repo.prune_deliveries(db, now - DELIVERY_KEEP_SECONDS)
        if days is None:
            return SweepReport(deliveries=deliveries)
        sessions = await repo.stale_sessions(db, now - days * DAY)
        generations = await repo.generation_ids(db, sessions) if sessions else []
        images, image_paths, _files = await repo.drop_images(db, generations, keep_approved=True)
        inputs, input_paths = await repo.drop_inputs(db, generations)
        attachments, attachment_paths = await repo.drop_attachments(db, sessions)
        prompts = await repo.blank_prompts(db, generations)
    paths = image_paths + input_paths + attachment_paths
    files = await policy_db.delete_unused_files(sm, paths, store)
    report = SweepReport(len(sessions), images, inputs, attachments, prompts, files, deliveries)
    if images or inputs or attachments or prompts:
        async with sm.begin() as db:
            await policy_db.audit(db, "retention", detail=asdict(report))
    log.info("retention: %s", report)
    return report


class RetentionTask(Periodic):
    """Runs `sweep` now and then every `interval` seconds (a day) until stopped.

    A failed sweep is logged and tried again at the next interval. `clock` gives the time
    each sweep uses (UTC epoch seconds); `store` is the image store files are deleted from."""

    name = "retention sweep"

    def __init__(
        self,
        sm: async_sessionmaker[AsyncSession],
        days: float | None,
        *,
        interval: float = DAY,
        clock: Callable[[], float] = time.time,
        store: ImageStore | None = None,
    ) -> None:
        super().__init__(interval)
        self.sm, self.days, self.clock = sm, days, clock
        self.store = store

    async def run_once(self) -> None:
        """One sweep at `clock()`."""
        await sweep(self.sm, self.days, self.clock(), self.store)
