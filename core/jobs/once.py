"""Exactly once across crashes and lost answers: every side effect is recorded first.

A post whose answer never arrived (the process died, the connection dropped after the
platform accepted it) leaves an intent without an answer. The next try looks for the
publisher's own tagged message first (`Publisher.find_posted`, from the time the intent was
recorded) and adopts it; only when there is none is the post made again. Uploads are made
in steps: the file ids are reserved and recorded before the files are shared, and a
resumed upload asks where those files stand (shared: adopt; uploaded: share; missing:
upload again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from core.db import effects
from core.db import jobs as jobs_db
from core.db.jobs import Job
from core.jobs.context import JobContext
from core.ports import Effect, GenerationView, UploadState

log = logging.getLogger(__name__)


async def post_once(
    ctx: JobContext,
    job: Job,
    view: GenerationView,
    effect: Effect,
    post: Callable[[], Awaitable[str]],
) -> str:
    """The ts of the message of `effect`: adopted when an earlier try landed, else posted
    by `post()` after the intent is recorded. The caller records the ts (which marks the
    effect done). Raises LeaseLost, PublishError, ChannelUnreachable."""
    intent = await effects.get(ctx.sm, job.id, effect)
    if intent is not None and not intent.done:
        found = await ctx.publisher.find_posted(view, effect, intent.attempted_at)
        if found is not None:
            log.info("job %s: adopted the %s message %s of an earlier try", job.id, effect, found)
            return found
    await jobs_db.attempt(ctx.sm, job.id, ctx.owner, effect)
    return await post()


async def upload_once(ctx: JobContext, job: Job, view: GenerationView) -> GenerationView:
    """Share the images without a file id into the thread exactly once; the view with their
    file ids (recorded). Raises LeaseLost, PublishError, ChannelUnreachable."""
    if all(image.file_id is not None for image in view.images):
        return view
    intent = await effects.get(ctx.sm, job.id, Effect.UPLOAD)
    file_ids = intent.file_ids if intent is not None and not intent.done else {}
    if file_ids:
        state = await ctx.publisher.uploads_state(view, file_ids)
        log.info("job %s: files %s of an earlier try are %s", job.id, sorted(file_ids), state)
        if state is UploadState.MISSING:
            file_ids = {}
        elif state is UploadState.UPLOADED:
            await ctx.publisher.share_uploads(view, file_ids)
    if not file_ids:
        await jobs_db.attempt(ctx.sm, job.id, ctx.owner, Effect.UPLOAD)
        file_ids = await ctx.publisher.reserve_uploads(await _on_this_machine(ctx, view))
        await jobs_db.reserve_files(ctx.sm, job.id, ctx.owner, file_ids)
        await ctx.publisher.share_uploads(view, file_ids)
    await jobs_db.set_file_ids(ctx.sm, job.id, ctx.owner, file_ids)
    images = tuple(
        replace(image, file_id=file_ids.get(image.index, image.file_id)) for image in view.images
    )
    return replace(view, images=images)


async def _on_this_machine(ctx: JobContext, view: GenerationView) -> GenerationView:
    """The view with each image still to upload as a file on this machine (the image store
    may be a bucket: `ImageStore.local_path`). Raises OSError (an image is gone)."""
    images = tuple(
        [
            image
            if image.file_id is not None
            else replace(image, path=await ctx.store.local_path(image.path))
            for image in view.images
        ]
    )
    return replace(view, images=images)
