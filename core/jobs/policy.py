"""The engine's one content-policy step: generated images checked before they are posted
(MODERATION_RESULTS=on). Called once from `core.jobs.steps.handle_status`, after the
images are in the image store and before they are recorded.
"""

from __future__ import annotations

import logging

from core.db import policy as policy_db
from core.db.jobs import Job
from core.jobs import outcomes
from core.jobs.context import JobContext
from core.ports import Failure, FailureReason, GenerationView
from core.store import StoredBlob

log = logging.getLogger(__name__)

WITHHELD = "withheld"  # Failure.kind of a result the policy flagged (bot words it)


async def withhold_flagged(
    ctx: JobContext, job: Job, view: GenerationView, blobs: list[StoredBlob]
) -> bool:
    """True when the policy flags the generated images: the job fails with kind "withheld"
    (the thread is told, nothing is posted), the audit trail records the categories and the
    stored files no row uses are deleted. False (nothing done) when results are not
    moderated or the images are clean. Raises ProviderError (the step is retried) when
    moderation cannot answer and MODERATION_FAIL=closed."""
    if ctx.moderator is None or not ctx.moderator.results:
        return False
    images = [await ctx.store.read(blob.path) for blob in blobs]
    verdict = await ctx.moderator.review_results(images)
    if not verdict.flagged:
        return False
    log.info("job %s: result withheld by the content policy (%s)", job.id, verdict.categories)
    async with ctx.sm.begin() as db:
        await policy_db.audit(
            db,
            "result_withheld",
            team_id=view.team_id,
            channel_id=view.channel_id,
            user_id=view.requested_by,
            detail={"generation_id": job.id, "categories": list(verdict.categories)},
        )
    await policy_db.delete_unused_files(ctx.sm, [str(blob.path) for blob in blobs], ctx.store)
    await outcomes.fail(ctx, job, view, Failure(FailureReason.PROVIDER, WITHHELD))
    return True
