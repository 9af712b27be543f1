"""Running forget-me's recorded deletions in Slack (issue 12): `core.forget.run_deletions`
with the publisher's chat.delete and files.delete, the messages that share each file read
from files.info `shares` first (Slack keeps them, showing a tombstone)."""

from __future__ import annotations

from bot import uploads
from bot.publisher import SlackPublisher
from bot.runtime import Runtime
from core import forget


async def run(runtime: Runtime, team_id: str) -> forget.DeletionCounts:
    """Make the recorded deletions of workspace `team_id` that are not done (each claimed
    before its call, so nothing is deleted twice); returns the counts."""
    publisher = runtime.publisher

    async def shares(file_id: str) -> list[tuple[str, str]]:
        return uploads.share_messages(await publisher.file_info(file_id) or {})

    return await forget.run_deletions(runtime.sessionmaker, team_id, deleter(publisher), shares)


def deleter(publisher: SlackPublisher) -> forget.Deleter:
    """The deleter `core.forget.run_deletions` calls: chat.delete or files.delete."""

    async def delete(item: forget.Deletion) -> str:
        if item.kind == "file":
            return await publisher.delete_file(item.ref)
        return await publisher.delete_message(item.channel_id, item.ref)

    return delete
