"""Publishing fully approved images to the channel's gallery, exactly once.

`core.sessions.approve` records the intent (a `gallery_posts` row) in the transaction that
completes the approval; `publish` claims it, posts (`SlackPublisher.publish_to_gallery`,
which tags the post with message metadata) and records the outcome. A double click finds
nothing to claim; a process that crashed after claiming leaves a stale claim, and a post
Slack refused (bot not in the gallery, channel gone, rate limits, network) goes back to
pending with a due time (backoff); `GalleryRetries` takes both again, looking first for
the post an earlier try may have made, so the post is made exactly once when it succeeds.
An image forgotten (forget-me) while its post was being made takes its intent with it;
the post is then recorded for deletion and deleted like forget-me's others.
The gallery post shares the image by reference (an image block's `slack_file` naming the
file already uploaded in the thread), not by uploading it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot import blocks, deletions, messages
from bot.publisher import SlackPublisher
from bot.routing import team_of
from bot.runtime import Runtime
from core import review
from core.db.views import GenerationGone
from core.jobs.outcomes import best_effort
from core.periodic import Periodic
from core.ports import ChannelUnreachable, PublishError

log = logging.getLogger(__name__)

Notify = Callable[[str], Awaitable[None]]
POLL_SECONDS = 5.0  # how often due gallery posts are looked for (at most)


async def publish(runtime: Runtime, image_id: int, notify: Notify | None = None) -> str | None:
    """Publish an image whose gallery post is recorded; returns the post's ts, or None when
    there was nothing to do (posted already, being posted elsewhere, not due) or Slack
    refused it. A refused post (not_in_channel, channel_not_found, rate limits, network)
    keeps the approval, is recorded with its next try (`review.gallery_refused`, backoff
    from the GALLERY_RETRY_* settings), and on its first refusal the thread says the post
    is pending and `notify` tells the approver how to fix it."""
    sm = runtime.sessionmaker
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
    publisher = runtime.publisher.for_team(team_of(view))
    try:
        ts = await publisher.find_gallery_post(job.channel_id, image_id) if job.resumed else None
        if ts is None:
            ts = await publisher.publish_to_gallery(await _post(publisher, item))
    except (ChannelUnreachable, PublishError) as err:
        await _refused(runtime, item, err, notify)
        return None
    if not await review.finish_gallery(sm, job, team_id=view.team_id, ts=ts):
        log.info("gallery post of image %s: the image was forgotten meanwhile", image_id)
        await deletions.run(runtime, view.team_id)  # the post is recorded: delete it
        return None
    await publisher.review_items_changed(view)  # Home tabs link the gallery post now
    return ts


async def _refused(
    runtime: Runtime,
    item: review.GalleryItem,
    err: ChannelUnreachable | PublishError,
    notify: Notify | None,
) -> None:
    """Record a refused gallery post; on its first refusal say so in the thread and tell
    the approver (when the bot cannot post there)."""
    job, view = item.job, item.view
    unreachable = isinstance(err, ChannelUnreachable)
    code = err.reason if isinstance(err, ChannelUnreachable) else _code(err)
    settings = runtime.settings
    retry = review.GalleryRetry(
        settings.gallery_retry_seconds,
        settings.gallery_retry_max_seconds,
        settings.gallery_retry_attempts,
    )
    refused = await review.gallery_refused(
        runtime.sessionmaker,
        job,
        team_id=view.team_id,
        error=code,
        retry_after=None if unreachable else getattr(err, "retry_after", None),
        retry=retry,
    )
    log.warning(
        "gallery post of image %s refused (%s), try %s; %s",
        job.image_id,
        code,
        refused.attempts,
        "given up" if refused.gave_up else f"next in {refused.delay:.1f}s",
    )
    if refused.attempts != 1:
        return
    publisher = runtime.publisher.for_team(team_of(view))
    if view.thread_ts:
        note = messages.gallery_pending(job.channel_id, code)
        await best_effort(publisher.say_in_thread(view.channel_id, view.thread_ts, note))
    if notify is not None and unreachable:
        await notify(messages.gallery_not_in_channel(job.channel_id, code))


def _code(err: PublishError) -> str:
    """A short code for a transient refusal: "ratelimited" when Slack sent Retry-After."""
    return "ratelimited" if err.retry_after is not None else "slack_error"


async def _post(publisher: SlackPublisher, item: review.GalleryItem) -> blocks.GalleryPost:
    view = item.view
    image = next(i for i in view.images if i.index == item.index)
    link = await publisher.permalink(view.channel_id, view.result_ts or view.thread_ts or "")
    return blocks.GalleryPost(
        channel_id=item.job.channel_id,
        image_id=image.image_id,
        generation_id=view.generation_id,
        label=f"v{view.version} image {image.index + 1}",
        prompt=view.ask.prompt,
        requested_by=view.requested_by,
        approvers=image.votes or ((image.approved_by,) if image.approved_by else ()),
        lineage=item.lineage,
        thread_link=link,
        file_id=image.file_id,
    )


async def resume(runtime: Runtime) -> None:
    """Publish every recorded gallery post that is due (never finished, or its retry time
    has come)."""
    for image_id in await review.open_gallery_posts(runtime.sessionmaker):
        try:
            await publish(runtime, image_id)
        except Exception:  # one bad row must not stop the others
            log.exception("resuming the gallery post of image %s failed", image_id)


class GalleryRetries(Periodic):
    """The background task that publishes due gallery posts: at start (posts a crash
    interrupted) and then every `interval` seconds (posts Slack refused, after their
    backoff). Any number of processes may run it: a post is claimed before it is made."""

    name = "gallery retries"

    def __init__(self, runtime: Runtime, interval: float | None = None) -> None:
        super().__init__(interval or min(runtime.settings.gallery_retry_seconds, POLL_SECONDS))
        self.runtime = runtime

    async def run_once(self) -> None:
        """Publish the gallery posts that are due."""
        await resume(self.runtime)
