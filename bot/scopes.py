"""Which OAuth scopes the bot needs, and why: the source of truth for `manifest.json`'s
`oauth_config.scopes.bot` (a test keeps the two equal) and for `imagine-bot doctor`.

Each Web API method the bot calls needs one of the scopes its reference page lists under
"Required scopes" (https://docs.slack.dev/reference/methods/<method>); a bot event needs
the scope its event page lists (https://docs.slack.dev/reference/events/<event>); a slash
command needs `commands`.
"""

from __future__ import annotations

METHOD_SCOPES: dict[str, frozenset[str]] = {
    # method → any one of these bot scopes is enough (empty: no scope needed)
    "auth.test": frozenset(),
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.getPermalink": frozenset(),
    "files.getUploadURLExternal": frozenset({"files:write"}),
    "files.completeUploadExternal": frozenset({"files:write"}),
    "files.info": frozenset({"files:read"}),
    "files.delete": frozenset({"files:write"}),
    "conversations.info": frozenset({"channels:read", "groups:read", "im:read", "mpim:read"}),
    "conversations.history": frozenset(
        {"channels:history", "groups:history", "im:history", "mpim:history"}
    ),
    "conversations.replies": frozenset(
        {"channels:history", "groups:history", "im:history", "mpim:history"}
    ),
    "users.info": frozenset({"users:read"}),
    "usergroups.users.list": frozenset({"usergroups:read"}),
    "views.open": frozenset(),
    "views.update": frozenset(),
    "views.publish": frozenset(),
    "users.conversations": frozenset({"channels:read", "groups:read", "im:read", "mpim:read"}),
}
"""Required bot scopes of every Web API method the bot may call (from Slack's method pages)."""

EVENT_SCOPES: dict[str, str | None] = {
    "app_home_opened": None,  # no scope: https://docs.slack.dev/reference/events/app_home_opened
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
}
"""The scope each bot event subscription needs (from Slack's event pages)."""

BOT_SCOPES: dict[str, str] = {
    "app_mentions:read": "see `@imagine <prompt>` mentions in channels",
    "channels:history": "see replies in threads in public channels",
    "channels:read": "check that the bot is in a public channel (`imagine-bot doctor`); "
    "list only channels a person is in on their Home tab (`users.conversations`)",
    "chat:write": "post (and on forget-me delete) the thread, status, results, private notes",
    "commands": "the `/imagine` slash command",
    "files:read": "download the images people post in a thread",
    "files:write": "upload the generated images into the thread; delete them on forget-me",
    "groups:history": "see replies in threads in private channels",
    "groups:read": "check that the bot is in a private channel (`imagine-bot doctor`); "
    "the same for private channels on the Home tab (`users.conversations`)",
    "users:read": "tell workspace admins and owners (`users.info`) for admin-only settings",
    "usergroups:read": "judge approvals by user group reviewers (`usergroups.users.list`)",
}
"""Every bot scope the app asks for (`manifest.json`), with what it is used for."""

PRIVATE_FILE_SCOPE = "files:read"
"""Downloading a file's `url_private` with the bot token needs `files:read`."""


def missing_scopes(granted: str | None) -> list[str]:
    """The scopes of `BOT_SCOPES` absent from `granted`, Slack's comma-separated
    `x-oauth-scopes` header value (None or "" when Slack sent none), in sorted order."""
    have = {scope.strip() for scope in (granted or "").split(",") if scope.strip()}
    return sorted(set(BOT_SCOPES) - have)
