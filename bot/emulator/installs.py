"""Many workspaces in one stand-in: OAuth installs, per-workspace bot tokens, Grid orgs,
and the file shapes Slack Connect and deleted files arrive in.

Slack's OAuth v2 (https://api.slack.com/authentication/oauth-v2): the person approves the
app on Slack's authorize page, Slack redirects to the app's redirect URL with a one-time
``code``, and the app exchanges it with ``oauth.v2.access`` (client id and secret as HTTP
Basic auth or form fields) for a bot token of that workspace. An Enterprise Grid org-wide
install (https://api.slack.com/enterprise/organization-ready-apps) answers with
``team: null``, ``enterprise`` set and ``is_enterprise_install: true``, and its events
carry ``authorizations[].team_id: null``. A token only reaches its own workspace's (or
org's) channels: others are ``channel_not_found``, as on Slack.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from .webapi import ApiError


@dataclass
class Install:
    """One installation: a workspace (or a whole Grid org when ``org_wide``) and its token."""

    team_id: str | None
    team_name: str | None
    enterprise_id: str | None
    bot_token: str
    bot_user_id: str
    bot_id: str
    org_wide: bool = False
    installer: str = "U0ALICE"


@dataclass
class TokenUse:
    """One authenticated request: which method (``download`` for ``url_private``), the
    team the token belongs to (None for an org-wide token), its org, and the channel named."""

    method: str
    team_id: str | None
    enterprise_id: str | None
    channel: str | None


@dataclass
class Installs:
    """OAuth state of the stand-in: the app's client credentials, pending codes, issued
    tokens, which team (and org) each channel belongs to, and every token use."""

    client_id: str = field(default_factory=lambda: f"1111.{secrets.randbelow(10**9)}")
    client_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    app_id: str = "A0IMAGINE"
    # One bot user for every install: the stand-in posts every bot message as that user.
    bot_user_id: str = "U0BOT"
    bot_id: str = "B0BOT"
    scope: str = "app_mentions:read,channels:history,chat:write,commands,files:read,files:write"
    codes: dict[str, Install] = field(default_factory=dict)
    tokens: dict[str, Install] = field(default_factory=dict)
    channel_team: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    uses: list[TokenUse] = field(default_factory=list)

    def authorize(
        self,
        team_id: str | None,
        *,
        team_name: str | None = None,
        enterprise_id: str | None = None,
        org_wide: bool = False,
        installer: str = "U0ALICE",
    ) -> str:
        """The person clicks "Allow" on Slack's authorize page: a one-time ``code`` that
        ``oauth.v2.access`` exchanges for a new bot token of that workspace (or org)."""
        code = f"code-{secrets.token_hex(8)}"
        key = (team_id or enterprise_id or "X").lower()
        self.codes[code] = Install(
            None if org_wide else team_id,
            team_name or team_id,
            enterprise_id,
            f"xoxb-{key}-{secrets.token_hex(8)}",
            bot_user_id=self.bot_user_id,
            bot_id=self.bot_id,
            org_wide=org_wide,
            installer=installer,
        )
        return code

    def access(self, params: dict[str, Any], authorization: str) -> dict[str, Any]:
        """``oauth.v2.access``: exchange a code (once) for the installation's token."""
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        if authorization.lower().startswith("basic "):
            raw = base64.b64decode(authorization[6:].strip()).decode()
            client_id, _, client_secret = raw.partition(":")
        if client_id != self.client_id:
            raise ApiError("invalid_client_id")
        if client_secret != self.client_secret:
            raise ApiError("bad_client_secret")
        found = self.codes.pop(str(params.get("code") or ""), None)
        if found is None:
            raise ApiError("invalid_code")
        self.tokens[found.bot_token] = found
        enterprise = {"id": found.enterprise_id, "name": found.enterprise_id}
        return {
            "access_token": found.bot_token,
            "token_type": "bot",
            "scope": self.scope,
            "bot_user_id": found.bot_user_id,
            "app_id": self.app_id,
            "team": None if found.org_wide else {"id": found.team_id, "name": found.team_name},
            "enterprise": enterprise if found.enterprise_id else None,
            "is_enterprise_install": found.org_wide,
            "authed_user": {"id": found.installer},
        }

    def auth_test(self, found: Install, base: dict[str, Any]) -> dict[str, Any]:
        """``auth.test`` for an installed token: its own team, bot user and bot id."""
        return {
            **base,
            "team_id": found.team_id,
            "enterprise_id": found.enterprise_id,
            "user_id": found.bot_user_id,
            "bot_id": found.bot_id,
            "is_enterprise_install": found.org_wide,
        }

    def place(self, channel_id: str, team_id: str, enterprise_id: str | None = None) -> None:
        """Make `channel_id` a channel of `team_id` (in Grid org `enterprise_id`)."""
        self.channel_team[channel_id] = (team_id, enterprise_id)

    def reaches(self, found: Install, channel_id: str | None) -> bool:
        """Whether a token may use a channel: channels of its team, or of its org when the
        install is org-wide; a channel not placed in any team belongs to every token."""
        if not channel_id or channel_id not in self.channel_team:
            return True
        team_id, enterprise_id = self.channel_team[channel_id]
        if found.org_wide:
            return enterprise_id is not None and enterprise_id == found.enterprise_id
        return team_id == found.team_id

    def use(self, method: str, token: str, channel: str | None) -> Install | None:
        """Record a use of an installed token (None when `token` is not one); raises
        ApiError("channel_not_found") when the channel is another workspace's."""
        found = self.tokens.get(token)
        if found is None:
            return None
        self.uses.append(TokenUse(method, found.team_id, found.enterprise_id, channel))
        if not self.reaches(found, channel):
            raise ApiError("channel_not_found")
        return found

    def team_fields(self, channel_id: str) -> tuple[str, str | None, bool] | None:
        """(team_id, enterprise_id, org-wide install?) for deliveries from a placed channel."""
        if channel_id not in self.channel_team:
            return None
        team_id, enterprise_id = self.channel_team[channel_id]
        org_wide = any(
            i.org_wide and i.enterprise_id == enterprise_id for i in self.tokens.values()
        )
        return team_id, enterprise_id, org_wide


def retarget(body: dict[str, Any], fields: tuple[str, str | None, bool] | None) -> None:
    """Put a delivery (slash command form, ``block_actions`` payload or ``event_callback``)
    in another team/org, in the places Slack puts them (``team_id``/``enterprise_id`` form
    fields; ``team``/``enterprise``/``user.team_id``; ``team_id``, ``context_*`` and
    ``authorizations``, with ``team_id: null`` for an org-wide install)."""
    if fields is None:
        return
    team_id, enterprise_id, org_wide = fields
    if body.get("type") == "event_callback":
        body.update(team_id=team_id, context_team_id=team_id, context_enterprise_id=enterprise_id)
        if "team" in body.get("event", {}):
            body["event"]["team"] = team_id
        if enterprise_id:
            body["enterprise_id"] = enterprise_id
        for item in body.get("authorizations") or []:
            item.update(
                team_id=None if org_wide else team_id,
                enterprise_id=enterprise_id,
                is_enterprise_install=org_wide,
            )
        return
    if body.get("type") == "block_actions":
        body["team"] = {"id": team_id, "domain": team_id.lower(), "enterprise_id": enterprise_id}
        body["user"]["team_id"] = team_id
        body["enterprise"] = {"id": enterprise_id, "name": enterprise_id} if enterprise_id else None
        body["is_enterprise_install"] = org_wide
        return
    body["team_id"] = team_id
    body["is_enterprise_install"] = "true" if org_wide else "false"
    if enterprise_id:
        body.update(enterprise_id=enterprise_id, enterprise_name=enterprise_id)


def shape_files(event: dict[str, Any], shape: str) -> None:
    """Deliver a message event's files in another of Slack's shapes
    (https://api.slack.com/types/file): ``"check_file_info"`` as Slack Connect channels do
    (``{"id", "mode": "file_access", "file_access": "check_file_info"}``; the app must call
    ``files.info``), ``"tombstone"`` as for a deleted file (``{"id", "mode": "tombstone"}``).
    """
    if shape == "hosted":
        return
    if shape not in ("check_file_info", "tombstone"):
        raise ValueError(f"file shape must be hosted, check_file_info or tombstone, not {shape}")
    stubs = []
    for file in event.get("files") or []:
        if shape == "tombstone":
            stubs.append({"id": file["id"], "mode": "tombstone"})
        else:
            stubs.append({"id": file["id"], "mode": "file_access", "file_access": shape})
    event["files"] = stubs
