"""Who is an admin of the app: the workspace's admins and owners (Slack's `users.info`
`is_admin` / `is_owner` / `is_primary_owner`), plus the user ids in `IMAGINE_ADMINS`.

Admin-only features (review policies, quotas, channel defaults) ask `is_admin` when a
request is judged, so a change in Slack applies at once.
"""

from __future__ import annotations

from bot.publisher import SlackPublisher
from core.config import Settings

ADMIN_FLAGS = ("is_admin", "is_owner", "is_primary_owner")
"""The fields of Slack's user object that make a workspace admin or owner
(https://docs.slack.dev/reference/objects/user-object)."""


async def is_admin(publisher: SlackPublisher, settings: Settings, user_id: str) -> bool:
    """True when `user_id` is in `IMAGINE_ADMINS` or is a workspace admin or owner.

    Asks Slack (`users.info`, needs `users:read`) unless the setting already says yes; when
    Slack does not answer the user is treated as a non-admin (the safe side).
    """
    if user_id in settings.admin_ids():
        return True
    user = await publisher.user_info(user_id)
    return bool(user) and any(bool(user.get(flag)) for flag in ADMIN_FLAGS)
