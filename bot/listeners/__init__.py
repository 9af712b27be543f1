"""Bolt listeners as module-level functions, registered here in one place.

Each listener gets the bot's `Runtime` from Bolt's context (`context["runtime"]`), put
there by the middleware `register` installs; so a listener is importable alone and can be
called in a test with a fake `ack`/`respond` and a plain dict as context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot import blocks
from bot.home import HOME_APPROVE, HOME_REQUEST_CHANGES
from bot.listeners import actions, commands, cost, events, home, mentions, privacy, review, styles
from bot.review_views import REQUEST_CHANGES_VIEW, SETTINGS_VIEW
from bot.runtime import Runtime
from bot.style_views import SAVE_STYLE_VIEW


class ProvideRuntime(AsyncMiddleware):
    """A Bolt middleware putting the request's `Runtime` (`Runtime.for_request`) in Bolt's
    context as `context["runtime"]`. (A class, not a function: Bolt builds a function
    middleware's keyword arguments for every request; issue 13.)"""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[Any]]
    ) -> BoltResponse | None:
        """Set `context["runtime"]`, then go on."""
        req.context["runtime"] = self._runtime.for_request(req.context)
        return await next()


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Install the runtime middleware and every listener on `app`."""
    app.use(ProvideRuntime(runtime))
    app.command("/imagine")(commands.imagine)
    app.action(blocks.APPROVE)(review.approve)
    app.action(blocks.REQUEST_CHANGES)(review.request_changes)
    app.view(REQUEST_CHANGES_VIEW)(review.changes_submitted)
    app.view(SETTINGS_VIEW)(review.settings_submitted)
    app.action(blocks.REGENERATE)(actions.regenerate)
    app.action(blocks.REFINE_THIS)(actions.refine_this)
    app.action(blocks.CANCEL)(actions.cancel)
    app.action(blocks.HISTORY)(actions.history)
    app.action(blocks.GENERATE_ANYWAY)(cost.generate_anyway)
    app.action(blocks.FORGET_ME)(privacy.confirm)
    app.action(blocks.SAVE_STYLE)(styles.save_style_chosen)
    app.view(SAVE_STYLE_VIEW)(styles.save_style_submitted)
    app.event("message")(events.on_message)
    app.event("app_mention")(mentions.on_mention)
    app.event("app_home_opened")(home.on_app_home_opened)
    app.action(HOME_APPROVE)(home.home_approve)
    app.action(HOME_REQUEST_CHANGES)(home.home_request_changes)
