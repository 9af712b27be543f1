"""`python -m benchmarks.bare_bolt`: the reference for ack latency, a Bolt app that only acks.

The same framework, adapter and signature check as the bot (slack_bolt's AsyncApp on
aiohttp, verifying Slack's signatures), and nothing else: `/imagine` is acknowledged at
once. Environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL (Bolt asks
`auth.test` once, on the first request), PORT.
"""

from __future__ import annotations

import os

from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

# The bot's listen backlog (bot.app.LISTEN_BACKLOG; not imported: the reference stays bare).
LISTEN_BACKLOG = 1024


async def _imagine(ack: AsyncAck) -> None:
    await ack()


def main() -> None:
    """Serve `POST /slack/events` on PORT until interrupted."""
    token = os.environ["SLACK_BOT_TOKEN"]
    client = AsyncWebClient(token=token, base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"], token=token, client=client)
    app.command("/imagine")(_imagine)
    # Bolt's own server (`app.start`), with the bot's listen backlog: aiohttp's default of
    # 128 drops SYNs under a burst of 300, which then come again after 1 s.
    port = int(os.environ["PORT"])
    server = app.server(port=port, path="/slack/events")
    web.run_app(server.web_app, port=port, backlog=LISTEN_BACKLOG, print=None)


if __name__ == "__main__":
    main()
