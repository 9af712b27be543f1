"""The App Home tab (issue 10): what a person sees when they open the app's Home.

Three lists (`core.home`): images waiting for their review (with Approve and Request
changes, whose `value` binds the image to its channel, "<generation>:<index>:<channel>:home",
because a click on a Home tab comes with no channel), their recent sessions (a thumbnail
of the newest version with an image block's `slack_file`,
https://docs.slack.dev/reference/block-kit/composition-objects/slack-file-object) and
recently approved images in channels they are in. Published with views.publish
(https://docs.slack.dev/reference/methods/views.publish): a `home` view of at most 100 blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    ImageBlock,
    MarkdownTextObject,
    SectionBlock,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import messages, mrkdwn
from bot.publisher import SlackPublisher
from bot.review_views import ChangeTarget
from bot.runtime import Runtime
from bot.workspaces import Team
from core import home as home_uc
from core.home import HomeData, HomeImage
from core.ports import PublishError

log = logging.getLogger(__name__)

HOME_APPROVE = "home_approve"
HOME_REQUEST_CHANGES = "home_request_changes"
VIEW_BLOCKS = 100  # a Home tab's most blocks (views.publish)
WORDS_CHARS = 300  # a prompt shown on Home is cut here (the thread has it whole)


def _label(image: HomeImage) -> str:
    return f"v{image.version} image {image.index + 1}"


def _short(words: str) -> str:
    return mrkdwn.clip(words, WORDS_CHARS)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=mrkdwn.clip(text, mrkdwn.SECTION_TEXT)))


def _button(text: str, action_id: str, value: str, style: str | None = None) -> ButtonElement:
    return ButtonElement(text=text, action_id=action_id, value=value, style=style)


def _waiting_blocks(data: HomeData) -> list[Block]:
    out: list[Block] = []
    for image in data.waiting:
        text = messages.home_waiting_line(
            _label(image), _short(image.words), image.requested_by, image.channel_id
        )
        value = ChangeTarget(image.generation_id, image.index, image.channel_id, True).metadata()
        out.append(_section(text))
        buttons = [
            _button("Approve", HOME_APPROVE, value, style="primary"),
            _button("Request changes", HOME_REQUEST_CHANGES, value),
        ]
        out.append(ActionsBlock(block_id=f"home-{value}", elements=buttons))
    return out or [_section(messages.HOME_NOTHING_WAITING)]


def _session_blocks(data: HomeData, links: dict[str, str | None]) -> list[Block]:
    out: list[Block] = []
    for session in data.sessions:
        link = links.get(f"{session.channel_id}:{session.thread_ts}")
        text = messages.home_session_line(
            _short(session.prompt),
            session.channel_id,
            session.versions,
            session.latest_version,
            link,
        )
        out.append(_section(text))
        if session.latest_file_id:
            alt = mrkdwn.clip(session.prompt, mrkdwn.ALT_TEXT) or "latest version"
            out.append(ImageBlock(slack_file={"id": session.latest_file_id}, alt_text=alt))
    return out or [_section(messages.HOME_NO_SESSIONS)]


def _approved_blocks(data: HomeData, links: dict[str, str | None]) -> list[Block]:
    out: list[Block] = []
    for image in data.approved:
        if image.gallery:
            link = links.get(":".join(image.gallery))
        else:
            link = links.get(f"{image.channel_id}:{image.result_ts}")
        text = messages.home_approved_line(
            _label(image),
            _short(image.words),
            image.channel_id,
            image.approved_by or "",
            link,
            image.gallery is not None and link is not None,
        )
        out.append(_section(text))
    return out or [_section(messages.HOME_NOTHING_APPROVED)]


def home_view(data: HomeData, links: dict[str, str | None]) -> dict[str, Any]:
    """The Home tab for `data`. `links` maps "<channel>:<ts>" to the message's permalink
    (None or absent: shown as a channel reference). At most 100 blocks."""
    blocks: list[Block] = []
    sections = (
        (messages.HOME_WAITING, _waiting_blocks(data)),
        (messages.HOME_SESSIONS, _session_blocks(data, links)),
        (messages.HOME_APPROVED, _approved_blocks(data, links)),
    )
    for title, body in sections:
        if blocks:
            blocks.append(DividerBlock())
        blocks.append(HeaderBlock(text=title))
        blocks += body
    if len(blocks) > VIEW_BLOCKS:
        blocks = [*blocks[: VIEW_BLOCKS - 1], ContextBlock(elements=[MarkdownTextObject(text="…")])]
    return {"type": "home", "blocks": [block.to_dict() for block in blocks]}


async def _links(publisher: SlackPublisher, data: HomeData) -> dict[str, str | None]:
    """Permalinks of the threads and approved images (gallery post, else the result)."""
    wanted: set[tuple[str, str]] = set()
    for session in data.sessions:
        wanted.add((session.channel_id, session.thread_ts))
    for image in data.approved:
        if image.gallery:
            wanted.add(image.gallery)
        elif image.result_ts:
            wanted.add((image.channel_id, image.result_ts))
    return {
        f"{channel}:{ts}": await publisher.permalink(channel, ts) for channel, ts in sorted(wanted)
    }


async def refresh(runtime: Runtime, team_id: str, user_id: str) -> None:
    """Build and publish `user_id`'s Home tab now (after a Home click: the clicker sees the
    result at once). The background refresher is told, so the change the click made is
    not published to them a second time. A refusal by Slack is logged, not raised."""
    changes, team = runtime.publisher.home_changes, runtime.publisher.team
    if changes is not None:
        changes.published(team or Team(team_id, None), user_id)
    await publish_for(runtime.sessionmaker, runtime.publisher, team_id, user_id)


async def publish_for(
    sm: async_sessionmaker[AsyncSession],
    publisher: SlackPublisher,
    team_id: str,
    user_id: str,
    known: Mapping[str, frozenset[str]] | None = None,
) -> None:
    """Build `user_id`'s Home tab from the database and publish it with `publisher` (bound
    to `team_id`'s workspace). `known`: {user group id: its members} already listed (the
    other groups are asked, usergroups.users.list). A refusal by Slack is logged, not raised."""
    known = known or {}
    groups = await home_uc.review_groups(sm, team_id)
    mine = frozenset(g for g in groups & known.keys() if user_id in known[g])
    data = await home_uc.home(
        sm,
        team_id,
        user_id,
        user_groups=mine | await publisher.groups_of(groups - known.keys(), user_id),
        channels=await publisher.member_channels(user_id),
    )
    view = home_view(data, await _links(publisher, data))
    try:
        await publisher.publish_home(user_id, view)
    except PublishError as err:
        log.warning("views.publish of a Home tab failed: %s", err)
