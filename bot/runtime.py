"""What listeners need from one running bot, built once by `bot.app.build_runtime`.

Listeners read it from Bolt's context (`context["runtime"]`, put there by the middleware
`bot.listeners.register` installs), so a listener module never imports `bot.app`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from slack_bolt.async_app import AsyncApp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.publisher import SlackPublisher
from bot.slack_client import PacedWebClient
from bot.workspaces import Team
from core import metrics
from core.config import Settings
from core.intake import Intake
from core.jobs import JobEngine
from core.moderation import Moderator
from core.privacy import RetentionTask
from core.providers.base import ImageProvider
from core.store import ImageStore


@dataclass
class Runtime:
    """Everything one running bot holds: settings, database, image store, provider, the
    Slack publisher, the job engine and the Bolt app."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    store: ImageStore
    provider: ImageProvider
    publisher: SlackPublisher
    jobs: JobEngine
    bolt: AsyncApp
    socket_mode: bool = False
    moderator: Moderator | None = None  # the content policy (None: MODERATION=off)
    retention: RetentionTask | None = None  # the daily retention sweep (bot.worker)
    # New sessions stored before their ack, started after (issue 13; SQLite only): None =
    # one transaction each, before the ack.
    intake: Intake | None = None

    def for_request(self, context: Any) -> Runtime:
        """This runtime with its publisher speaking for the workspace of a request (Bolt's
        context: `team_id`, `enterprise_id`); in single-workspace mode the same token."""
        team = Team(str(context.get("team_id") or ""), context.get("enterprise_id") or None)
        return replace(self, publisher=self.publisher.for_team(team))

    # False for `serve --no-worker`: this process queues jobs, `imagine-bot worker` runs them.
    run_jobs: bool = True
    # issue 13: event-loop lag and queue gauges for GET /metrics (started with the web app).
    sampler: metrics.Sampler | None = None

    async def aclose(self) -> None:
        """Stop the job engine (releasing its leases) and close connections."""
        if self.retention is not None:
            await self.retention.stop()
        if self.sampler is not None:
            await self.sampler.stop()
        if self.intake is not None:
            await self.intake.aclose()  # stores and starts what is queued: callers wait
        await self.jobs.stop()
        await self.publisher.aclose()  # the status edits still waiting
        if isinstance(self.bolt.client, PacedWebClient):  # OAuth: Bolt's client is ours
            await self.bolt.client.aclose()
        if self.moderator is not None:
            await self.moderator.aclose()
        await self.provider.aclose()
        await self.engine.dispose()
