"""Which token speaks for which workspace: one static bot token, or OAuth installations.

Single-workspace mode (only ``SLACK_BOT_TOKEN``): every call uses that token.

OAuth mode (``SLACK_CLIENT_ID``, ``SLACK_CLIENT_SECRET``, ``SLACK_STATE_SECRET``): Bolt's
OAuth flow (``/slack/install`` → Slack's authorize page → ``/slack/oauth_redirect`` →
``oauth.v2.access``, https://api.slack.com/authentication/oauth-v2) saves one installation
per workspace, or per Enterprise Grid org for an org-wide install, with slack_sdk's
``AsyncSQLAlchemyInstallationStore`` in the app's own database (tables made by Alembic
migration 0003). :class:`Workspaces` gives the ``AsyncWebClient`` of a (team, enterprise),
also long after the request, for the job engine. OAuth ``state`` values are kept in the
database by slack_sdk's ``AsyncSQLAlchemyOAuthStateStore`` and additionally signed with
``SLACK_STATE_SECRET`` (:class:`SignedStateStore`), so a forged state is refused before
any database lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.sqlalchemy import (
    AsyncSQLAlchemyInstallationStore,
    SQLAlchemyInstallationStore,
)
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import (
    AsyncSQLAlchemyOAuthStateStore,
    SQLAlchemyOAuthStateStore,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import scopes
from bot.slack_client import PacedWebClient
from core.config import Settings

log = logging.getLogger(__name__)

BOT_SCOPES = tuple(sorted(scopes.BOT_SCOPES))
"""The bot scopes the OAuth install asks for: the manifest's (`bot/scopes.py`)."""

STATE_SECONDS = 600
"""How long an OAuth ``state`` stays valid (seconds): one person's trip to Slack and back."""


class NotInstalled(LookupError):
    """No installation (bot token) is stored for the workspace or org named."""


def store_metadata() -> MetaData:
    """The tables of slack_sdk's SQLAlchemy installation and state stores (default names:
    ``slack_installations``, ``slack_bots``, ``slack_oauth_states``), as slack_sdk defines
    them; migration 0003 creates exactly these (its test compares)."""
    metadata = MetaData()
    SQLAlchemyInstallationStore.build_installations_table(metadata, "slack_installations")
    SQLAlchemyInstallationStore.build_bots_table(metadata, "slack_bots")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, "slack_oauth_states")
    return metadata


@dataclass(frozen=True)
class Team:
    """A workspace (``team_id``) and its Enterprise Grid org (``enterprise_id``, or None)."""

    team_id: str
    enterprise_id: str | None = None


class Workspaces:
    """The Web API client of a workspace: the static token's, or its installation's.

    ``client`` (no token in OAuth mode) gives base URL and timeouts. In OAuth mode
    ``store`` is the installation store; clients are made per token and kept.
    """

    def __init__(
        self, client: AsyncWebClient, store: AsyncSQLAlchemyInstallationStore | None = None
    ) -> None:
        self.client = client
        self.store = store
        self._clients: dict[str, AsyncWebClient] = {}

    async def client_for(self, team: Team | None) -> AsyncWebClient:
        """The client whose token belongs to `team`.

        Single-workspace mode: the static client, whatever `team`. OAuth mode: the bot
        token of the workspace's installation, else of its org's org-wide install
        (``is_enterprise_install``). Raises NotInstalled when neither exists.
        """
        if self.store is None:
            return self.client
        if team is None:
            raise NotInstalled("no workspace given")
        found = await self.store.async_find_bot(
            enterprise_id=team.enterprise_id, team_id=team.team_id
        )
        if found is None and team.enterprise_id:
            found = await self.store.async_find_bot(
                enterprise_id=team.enterprise_id, team_id=None, is_enterprise_install=True
            )
        if found is None or not found.bot_token:
            raise NotInstalled(f"{team.team_id} ({team.enterprise_id or 'no org'})")
        token = found.bot_token
        if token not in self._clients:
            self._clients[token] = self._new_client(token)
        return self._clients[token]

    def _new_client(self, token: str) -> AsyncWebClient:
        """A client for another workspace's token: paced on its own (bot.slack_client) when
        `client` is paced, else a plain one with the same base URL and timeout."""
        if isinstance(self.client, PacedWebClient):
            return self.client.for_token(token)
        return AsyncWebClient(
            token=token, base_url=self.client.base_url, timeout=self.client.timeout
        )


class SignedStateStore(AsyncOAuthStateStore):
    """slack_sdk's database state store, with each state signed by SLACK_STATE_SECRET.

    A state is ``<stored value>.<hex HMAC-SHA256(secret, stored value)>``; consuming
    checks the signature first (constant time), then consumes the stored value once.
    """

    def __init__(self, inner: AsyncSQLAlchemyOAuthStateStore, secret: str) -> None:
        self.inner = inner
        self._secret = secret.encode()

    @property
    def logger(self) -> logging.Logger:
        return log

    def _sign(self, value: str) -> str:
        return hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()

    async def async_issue(self, *args: object, **kwargs: object) -> str:
        value = await self.inner.async_issue()
        return f"{value}.{self._sign(value)}"

    async def async_consume(self, state: str) -> bool:
        value, _, signature = state.rpartition(".")
        if not value or not hmac.compare_digest(signature, self._sign(value)):
            log.warning("refused an OAuth state with a bad signature")
            return False
        return await self.inner.async_consume(value)


def oauth_flow(
    settings: Settings, engine: AsyncEngine, client: AsyncWebClient
) -> tuple[AsyncOAuthFlow, AsyncSQLAlchemyInstallationStore]:
    """Bolt's OAuth flow for `settings` (OAuth mode), storing in `engine`'s database.

    The install path redirects straight to Slack's authorize URL (no intermediate page),
    setting the state cookie Bolt checks at the redirect. `client` (no token) reaches
    ``oauth.v2.access`` at SLACK_API_URL.
    """
    assert settings.slack_client_id and settings.slack_client_secret
    assert settings.slack_state_secret
    store = AsyncSQLAlchemyInstallationStore(client_id=settings.slack_client_id, engine=engine)
    states = SignedStateStore(
        AsyncSQLAlchemyOAuthStateStore(expiration_seconds=STATE_SECONDS, engine=engine),
        settings.slack_state_secret.get_secret_value(),
    )
    oauth_settings = AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=list(BOT_SCOPES),
        installation_store=store,
        installation_store_bot_only=True,
        state_store=states,
        state_expiration_seconds=STATE_SECONDS,
        install_page_rendering_enabled=False,
    )
    # Bolt's default authorize asks Slack `auth.test` on every request; with its cache it
    # asks once per token (issue 13). The installation store still answers, per request,
    # which token a workspace has, so an uninstalled workspace is not served from the cache.
    oauth_settings.authorize = AsyncInstallationStoreAuthorize(
        logger=log,
        installation_store=store,
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        bot_only=True,
        cache_enabled=True,
        client=client,
    )
    return AsyncOAuthFlow(client=client, settings=oauth_settings), store
