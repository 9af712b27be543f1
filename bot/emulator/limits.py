"""Slack's documented Block Kit and message limits, checked the way Slack checks them.

Slack refuses a message whose blocks break a limit with ``invalid_blocks`` (the whole
call fails, nothing is posted), and a ``text`` over its limit with ``msg_too_long``
(https://docs.slack.dev/reference/methods/chat.postMessage, "Errors"). The limits, in
characters unless said otherwise:

- at most 50 blocks in a message: https://docs.slack.dev/reference/block-kit/blocks
- ``block_id`` at most 255: same page, every block's fields
- section ``text`` 1-3,000, ``fields`` at most 10 of at most 2,000 each:
  https://docs.slack.dev/reference/block-kit/blocks/section-block
- header ``text`` (plain_text) at most 150:
  https://docs.slack.dev/reference/block-kit/blocks/header-block
- context ``elements`` 1-10: https://docs.slack.dev/reference/block-kit/blocks/context-block
- actions ``elements`` at most 25: https://docs.slack.dev/reference/block-kit/blocks/actions-block
- button ``text`` at most 75, ``value`` at most 2,000, ``action_id`` at most 255,
  ``url`` at most 3,000: https://docs.slack.dev/reference/block-kit/block-elements/button-element
- overflow ``options`` 1-5: https://docs.slack.dev/reference/block-kit/block-elements/overflow-menu-element;
  each option's ``text`` at most 75 and ``value`` at most 150:
  https://docs.slack.dev/reference/block-kit/composition-objects/option-object
- image ``alt_text`` at most 2,000 (block and element), ``title`` at most 2,000:
  https://docs.slack.dev/reference/block-kit/blocks/image-block
- any text object at most 3,000:
  https://docs.slack.dev/reference/block-kit/composition-objects/text-object
- message ``text`` at most 40,000: https://docs.slack.dev/reference/methods/chat.postMessage
"""

from __future__ import annotations

from typing import Any

MESSAGE_BLOCKS = 50
MESSAGE_TEXT = 40000
BLOCK_ID = 255
SECTION_TEXT = 3000
SECTION_FIELDS = 10
SECTION_FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
BUTTON_URL = 3000
ALT_TEXT = 2000
IMAGE_TITLE = 2000
TEXT_OBJECT = 3000
OVERFLOW_OPTIONS = 5
OPTION_TEXT = 75
OPTION_VALUE = 150


def _text(obj: Any) -> str:
    """The string of a text object, or "" when it is not one."""
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return obj["text"]
    return ""


def _too_long(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


def _element_problem(el: Any, where: str) -> str | None:
    """What is wrong with an element of an actions/context block or an accessory."""
    if not isinstance(el, dict) or not el.get("type"):
        return f"{where}: not an element"
    kind = el["type"]
    if kind == "button":
        if not _text(el.get("text")) or len(_text(el.get("text"))) > BUTTON_TEXT:
            return f"{where}/text: must be 1-{BUTTON_TEXT} characters"
        if _too_long(el.get("value"), BUTTON_VALUE):
            return f"{where}/value: must be at most {BUTTON_VALUE} characters"
        if _too_long(el.get("action_id"), ACTION_ID):
            return f"{where}/action_id: must be at most {ACTION_ID} characters"
        if _too_long(el.get("url"), BUTTON_URL):
            return f"{where}/url: must be at most {BUTTON_URL} characters"
    elif kind == "overflow":
        return _overflow_problem(el, where)
    elif kind == "image":
        if _too_long(el.get("alt_text"), ALT_TEXT):
            return f"{where}/alt_text: must be at most {ALT_TEXT} characters"
    elif kind in ("mrkdwn", "plain_text") and len(_text(el)) > TEXT_OBJECT:
        return f"{where}/text: must be at most {TEXT_OBJECT} characters"
    return None


def _overflow_problem(el: dict[str, Any], where: str) -> str | None:
    options = el.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= OVERFLOW_OPTIONS:
        return f"{where}/options: must be 1-{OVERFLOW_OPTIONS} options"
    if _too_long(el.get("action_id"), ACTION_ID):
        return f"{where}/action_id: must be at most {ACTION_ID} characters"
    for i, option in enumerate(options):
        text = _text(option.get("text")) if isinstance(option, dict) else ""
        if not text or len(text) > OPTION_TEXT:
            return f"{where}/options/{i}/text: must be 1-{OPTION_TEXT} characters"
        if _too_long(option.get("value"), OPTION_VALUE):
            return f"{where}/options/{i}/value: must be at most {OPTION_VALUE} characters"
    return None


def _image_source_problem(block: dict[str, Any], where: str) -> str | None:
    """An image block names its picture by exactly one of `image_url` or `slack_file`, and a
    slack_file object by exactly one of `id` or `url`:
    https://docs.slack.dev/reference/block-kit/blocks/image-block and
    https://docs.slack.dev/reference/block-kit/composition-objects/slack-file-object"""
    source = block.get("slack_file")
    if (block.get("image_url") is None) == (source is None):
        return f"{where}: must provide exactly one of image_url or slack_file"
    if source is not None and (
        not isinstance(source, dict) or (source.get("id") is None) == (source.get("url") is None)
    ):
        return f"{where}/slack_file: must provide exactly one of id or url"
    return None


def _section_problem(block: dict[str, Any], where: str) -> str | None:
    text = block.get("text")
    fields = block.get("fields")
    if text is None and not fields:
        return f"{where}: needs text or fields"
    if text is not None and not 1 <= len(_text(text)) <= SECTION_TEXT:
        return f"{where}/text: must be 1-{SECTION_TEXT} characters"
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > SECTION_FIELDS:
            return f"{where}/fields: at most {SECTION_FIELDS} items"
        for i, fld in enumerate(fields):
            if len(_text(fld)) > SECTION_FIELD_TEXT:
                return f"{where}/fields/{i}: must be at most {SECTION_FIELD_TEXT} characters"
    accessory = block.get("accessory")
    return _element_problem(accessory, f"{where}/accessory") if accessory else None


def _elements_problem(block: dict[str, Any], where: str, limit: int) -> str | None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= limit:
        return f"{where}/elements: must be 1-{limit} items"
    for i, el in enumerate(elements):
        if problem := _element_problem(el, f"{where}/elements/{i}"):
            return problem
    return None


def _block_problem(block: Any, where: str) -> str | None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return f"{where}: not a block"
    if _too_long(block.get("block_id"), BLOCK_ID):
        return f"{where}/block_id: must be at most {BLOCK_ID} characters"
    kind = block["type"]
    if kind == "section":
        return _section_problem(block, where)
    if kind == "header":
        if not 1 <= len(_text(block.get("text"))) <= HEADER_TEXT:
            return f"{where}/text: must be 1-{HEADER_TEXT} characters"
    elif kind == "context":
        return _elements_problem(block, where, CONTEXT_ELEMENTS)
    elif kind == "actions":
        return _elements_problem(block, where, ACTIONS_ELEMENTS)
    elif kind == "image":
        if _too_long(block.get("alt_text"), ALT_TEXT):
            return f"{where}/alt_text: must be at most {ALT_TEXT} characters"
        if problem := _image_source_problem(block, where):
            return problem
        if len(_text(block.get("title"))) > IMAGE_TITLE:
            return f"{where}/title: must be at most {IMAGE_TITLE} characters"
    return None


def blocks_problem(blocks: list[Any], max_blocks: int = MESSAGE_BLOCKS) -> str | None:
    """The first limit `blocks` (a message's blocks; a view's with `max_blocks` 100) break,
    as Slack's ``response_metadata.messages`` words it
    (``"… [json-pointer:/blocks/3/text]"``), or None.
    """
    if len(blocks) > max_blocks:
        return f"no more than {max_blocks} items allowed [json-pointer:/blocks]"
    for i, block in enumerate(blocks):
        if problem := _block_problem(block, f"/blocks/{i}"):
            where, _, what = problem.partition(": ")
            return f"{what} [json-pointer:{where}]"
    return None


def text_too_long(text: Any) -> bool:
    """Whether a message ``text`` is over Slack's 40,000 characters."""
    return _too_long(text, MESSAGE_TEXT)
