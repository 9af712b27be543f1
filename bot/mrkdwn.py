"""Text that people typed, made safe to show in Slack mrkdwn, and Slack's size limits.

Escaping follows Slack's "Formatting text for app surfaces" reference
(https://docs.slack.dev/messaging/formatting-message-text/#escaping): Slack uses ``&``,
``<`` and ``>`` as control characters (``<@U…>``, ``<!channel>``, ``<url|label>``), so
text that is not meant as markup has them replaced by ``&amp;``, ``&lt;`` and ``&gt;``
(and only these: Slack decodes no other entity). Escaped ``>`` at the start of a line
is shown as ``>``, never as a block quote.

The limits are Slack's documented Block Kit and message limits, in characters:

- section ``text`` 3,000; text objects 3,000:
  https://docs.slack.dev/reference/block-kit/blocks/section-block
- header text 150: https://docs.slack.dev/reference/block-kit/blocks/header-block
- context: at most 10 elements: https://docs.slack.dev/reference/block-kit/blocks/context-block
- button text 75, value 2,000:
  https://docs.slack.dev/reference/block-kit/block-elements/button-element
- image ``alt_text`` 2,000: https://docs.slack.dev/reference/block-kit/blocks/image-block
- at most 50 blocks per message: https://docs.slack.dev/reference/block-kit/blocks
- message ``text`` 40,000 (Slack truncates beyond):
  https://docs.slack.dev/reference/methods/chat.postMessage
"""

from __future__ import annotations

import re

SECTION_TEXT = 3000
TEXT_OBJECT = 3000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ALT_TEXT = 2000
MESSAGE_BLOCKS = 50
MESSAGE_TEXT = 40000

ELLIPSIS = "…"
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# An entity cut short at the end of a clipped string: "&", "&a", "&am", "&l", "&gt" …
_PARTIAL_ENTITY = re.compile(r"&(?:a|am|amp|l|lt|g|gt)?$")


def escape(text: str) -> str:
    """`text` with ``&``, ``<`` and ``>`` replaced by Slack's entities (see module doc).

    Use on every piece of user text (prompts, replies, instructions, file names, style
    names, model names) and on sentences from ``core`` (plain text by contract) before
    they go into mrkdwn. Backticks and other mrkdwn characters are left as typed: the
    bot never wraps user text in a code span, so a backtick cannot break out of one.
    """
    return text.translate(_ESCAPES)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when it was cut.

    Safe on escaped text and on the bot's own markup: the cut never splits an entity
    (``&amp;``, ``&lt;``, ``&gt;``) nor leaves a ``<…>`` element (mention, link, date)
    open; it backs off to before it. ``limit`` must be at least 1.
    """
    if len(text) <= limit:
        return text
    kept = text[: max(limit - len(ELLIPSIS), 0)]
    kept = _PARTIAL_ENTITY.sub("", kept)
    opened = kept.rfind("<")
    if opened > kept.rfind(">"):
        kept = kept[:opened]
    return kept + ELLIPSIS


def user_text(text: str, limit: int) -> str:
    """Escaped `text`, clipped to `limit` characters (see :func:`escape`, :func:`clip`)."""
    return clip(escape(text), limit)


def quote(text: str, limit: int = SECTION_TEXT) -> str:
    """`text` escaped and shown as a mrkdwn block quote, at most `limit` characters.

    Every line gets a leading ``>``; a line the person started with ``>`` shows that
    character (escaped) inside the quote instead of nesting or ending it.
    """
    lines = escape(text).splitlines() or [""]
    return clip("\n".join(f">{line}" for line in lines), limit)
