"""*Save style* on a result (issue 12): a style named by the person, with a prompt fragment
they confirm (prefilled with the version's prompt) and the picked image as a reference.

Two use cases: `describe` (what the form starts from) and `save_from_result` (one
transaction: the target checked against the channel it was clicked in, the style saved
or its text changed, the image added as a reference, the same image-store file).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import moderation, styles
from core.db import refinement as threads
from core.db import styles as repo
from core.sessions import ActionRefused, Conversation, Refusal, check_target
from core.styles import MAX_STYLE_REFERENCES, MAX_STYLE_TEXT, StyleProblem, StyleRefused


@dataclass(frozen=True)
class ResultForStyle:
    """What the *Save style* form starts from: the image's label ("v2 image 1") and the
    version's prompt, cut to MAX_STYLE_TEXT characters."""

    label: str
    prompt: str


@dataclass(frozen=True)
class SavedFromResult:
    """A style saved from a result: its `name`, whether it is `new`, how many `references`
    it has now, the image's `label`, and the thread (`channel_id`, `thread_ts`)."""

    name: str
    new: bool
    references: int
    label: str
    channel_id: str
    thread_ts: str | None


async def describe(
    sm: async_sessionmaker[AsyncSession], generation_id: int, index: int, where: Conversation
) -> ResultForStyle:
    """The label and prompt of image `index` (0-based) of a generation clicked in `where`.
    Raises ActionRefused (GONE: no such generation or image, or its prompt was erased;
    WRONG_CONVERSATION)."""
    async with sm() as db:
        await check_target(db, generation_id, where)
        image = await repo.result_image(db, generation_id, index)
        prompt = await threads.prompt_of(db, generation_id)
    if image is None or not prompt:
        raise ActionRefused(Refusal.GONE)
    return ResultForStyle(image.label, prompt[:MAX_STYLE_TEXT])


async def save_from_result(
    sm: async_sessionmaker[AsyncSession],
    *,
    where: Conversation,
    user_id: str,
    generation_id: int,
    index: int,
    name: str,
    text: str,
    is_admin: bool,
    moderator: moderation.Moderator | None = None,
) -> SavedFromResult:
    """Save style `name` with fragment `text` and image `index` of the generation as a
    reference (after the content policy checked `text`). An existing style is changed
    only by its creator or an admin and takes at most MAX_STYLE_REFERENCES references.
    Raises StyleRefused (BAD_NAME, NO_TEXT, TOO_LONG, NOT_ALLOWED, FULL), ActionRefused
    (GONE, WRONG_CONVERSATION) or moderation.ModerationRefused; nothing changes then."""
    name, text = styles.validate(name, text)
    await moderation.check_request(
        moderator,
        sm,
        team_id=where.team_id,
        channel_id=where.channel_id,
        user_id=user_id,
        text=text,
    )
    async with sm.begin() as db:
        target = await check_target(db, generation_id, where)
        image = await repo.result_image(db, generation_id, index)
        if image is None:
            raise ActionRefused(Refusal.GONE)
        existing = await repo.find(db, where.team_id, name)
        if existing and existing.created_by != user_id and not is_admin:
            raise StyleRefused(StyleProblem.NOT_ALLOWED, name)
        if existing and len(existing.references) >= MAX_STYLE_REFERENCES:
            raise StyleRefused(StyleProblem.FULL, name)
        new = await repo.save(db, where.team_id, name, text, user_id)
        saved = await repo.find(db, where.team_id, name)
        assert saved is not None
        count = await repo.add_reference(db, saved.style_id, image)
        session = await threads.session_ref(db, target.session_id)
    thread = session.thread_ts if session else None
    return SavedFromResult(name, new, count, image.label, where.channel_id, thread)
