"""Publishing fully approved images to the channel's gallery, exactly once.

`core.sessions.approve` records the intent (a `gallery_posts` row) in the transaction that
completes the approval; `publish` claims it, posts (`SlackPublisher.publish_to_gallery`,
which tags the post with message metadata) and records the outcome. A double click finds
nothing to claim; a process that crashed after claiming leaves a stale claim that
`resume` (at start) takes again, looking for the post it may already have made first.
The gallery post shares the image by reference (an image block's `slack_file` naming the
file already uploaded in the thread), not by uploading it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot import blocks, messages
from bot.runtime import Runtime
from core import review
from core.db.views import GenerationGone
from core.ports import ChannelUnreachable, PublishError

log = logging.getLogger(__name__)

Notify = Callable[[str], Awaitable[None]]
_tasks: set[asyncio.Task[None]] = set()


async def publish(runtime: Runtime, image_id: int, notify: Notify | None = None) -> str | None:
    """Publish an image whose gallery post is recorded; returns the post's ts, or None when
    there was nothing to do (posted already, being posted elsewhere) or it failed. When the
    bot cannot post in the gallery, `notify` tells the approver how to fix it (the approval
    stands)."""
    sm, publisher = runtime.sessionmaker, runtime.publisher
    job = await review.claim_gallery(sm, image_id)
    if job is None:
        return None
    try:
        item = await review.gallery_item(sm, job)
    except (GenerationGone, StopIteration):
        log.info("gallery post of image %s: the image is gone", image_id)
        await review.finish_gallery(sm, job, team_id="", ts=None, unreachable="image_gone")
        return None
    view = item.view
    try:
        ts = await publisher.find_gallery_post(job.channel_id, image_id) if job.resumed else None
        if ts is None:
            ts = await publisher.publish_to_gallery(await _post(runtime, item))
    except ChannelUnreachable as err:
        await review.finish_gallery(sm, job, team_id=view.team_id, ts=None, unreachable=err.reason)
        if notify is not None:
            await notify(messages.gallery_not_in_channel(job.channel_id, err.reason))
        return None
    except PublishError as err:  # the claim goes stale and is taken again at the next start
        log.warning("gallery post of image %s failed: %s", image_id, err)
        return None
    await review.finish_gallery(sm, job, team_id=view.team_id, ts=ts)
    return ts


async def _post(runtime: Runtime, item: review.GalleryItem) -> blocks.GalleryPost:
    view = item.view
    image = next(i for i in view.images if i.index == item.index)
    link = await runtime.publisher.permalink(
        view.channel_id, view.result_ts or view.thread_ts or ""
    )
    return blocks.GalleryPost(
        channel_id=item.job.channel_id,
        image_id=image.image_id,
        generation_id=view.generation_id,
        label=f"v{view.version} image {image.index + 1}",
        prompt=view.prompt,
        requested_by=view.requested_by,
        approvers=image.votes or ((image.approved_by,) if image.approved_by else ()),
        lineage=item.lineage,
        thread_link=link,
        file_id=image.file_id,
    )


async def resume(runtime: Runtime) -> None:
    """Publish every recorded gallery post that was never finished (run at start)."""
    for image_id in await review.open_gallery_posts(runtime.sessionmaker):
        try:
            await publish(runtime, image_id)
        except Exception:  # one bad row must not stop the others
            log.exception("resuming the gallery post of image %s failed", image_id)


def start_resume(runtime: Runtime) -> None:
    """Run `resume` in the background (called once when the app starts)."""
    task = asyncio.get_running_loop().create_task(resume(runtime))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
