"""Cost control on the Slack side (issue 11): the quota policy from the settings, the
budget alert DMs to admins, and a generation's thread link for the duplicate note."""

from __future__ import annotations

import logging

from bot import messages
from bot.runtime import Runtime
from core import quotas
from core.config import Settings
from core.db import views
from core.ports import ChannelUnreachable, PublishError
from core.quotas import CostPolicy

log = logging.getLogger(__name__)


def policy(settings: Settings) -> CostPolicy:
    """The quota policy the settings describe (QUOTA_USER_DAILY_IMAGES,
    QUOTA_TEAM_MONTHLY_USD, IMAGINE_ADMINS, DUPLICATE_WINDOW_SECONDS, IMAGE_PRICES)."""
    return CostPolicy(
        user_daily_images=settings.quota_user_daily_images,
        team_monthly_usd=settings.quota_team_monthly_usd,
        admins=settings.admin_ids(),
        duplicate_window=settings.duplicate_window_seconds,
        prices=settings.image_prices,
    )


async def send_budget_alerts(runtime: Runtime) -> None:
    """DM every IMAGINE_ADMINS user once for each budget alert recorded and not yet sent
    (claimed first, so each alert is sent by one process only, once per month)."""
    for alert in await quotas.take_alerts(runtime.sessionmaker):
        text = messages.budget_alert(alert.month, alert.spent_usd, alert.limit_usd)
        for admin in sorted(runtime.settings.admin_ids()):
            try:
                await runtime.publisher.send_dm(admin, text)
            except (PublishError, ChannelUnreachable) as err:
                log.warning("budget alert DM to an admin failed: %s", err)


async def thread_link(runtime: Runtime, generation_id: int) -> str | None:
    """A permalink to the thread of a generation, or None while it has none."""
    view = await views.get_view(runtime.sessionmaker, generation_id)
    if view.thread_ts is None:
        return None
    return await runtime.publisher.permalink(view.channel_id, view.thread_ts)
