"""A local stand-in for Slack: Web API on loopback plus signed deliveries to the bot
(or Socket Mode envelopes over a WebSocket, see :mod:`bot.emulator.socket_mode`).

Used by the tests and by ``imagine-bot demo``; see :class:`SlackEmulator`.
"""

from .delivery import Delivery, sign
from .server import SlackEmulator
from .socket_mode import SocketModeGateway
from .state import Channel, Ephemeral, Message, SlackFile, User, Workspace
from .webapi import ApiCall

__all__ = [
    "ApiCall",
    "Channel",
    "Delivery",
    "Ephemeral",
    "Message",
    "SlackEmulator",
    "SlackFile",
    "SocketModeGateway",
    "User",
    "Workspace",
    "sign",
]
