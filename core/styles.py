"""Use cases of brand styles: a named prompt fragment plus up to 4 reference images, per
workspace, applied with `--style NAME` or as a channel's default.

A style's fragment is appended to the provider prompt; its references go to the provider
with the generation and count toward the 5-image limit (core.refinement.MAX_INPUTS).
Refusals raise `StyleRefused` with a `StyleProblem` code (bot words it); nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import moderation
from core.db import policy as policy_db
from core.db import styles as repo
from core.db.refinement import StoredImage, add_inputs
from core.db.styles import Style
from core.flags import STYLE_NAME
from core.ports import InputsNote
from core.store import ImageStore

MAX_STYLE_REFERENCES = 4
MAX_STYLE_TEXT = 500  # characters of a style's prompt fragment
NONE = "none"  # `--style none`: no style, not even the channel's default

__all__ = [
    "MAX_STYLE_REFERENCES",
    "MAX_STYLE_TEXT",
    "Style",
    "StyleProblem",
    "StyleRefused",
    "add_reference",
    "attach",
    "delete",
    "inputs_note",
    "listing",
    "resolve",
    "save",
    "set_default",
    "show",
    "styled_prompt",
    "validate",
]


class StyleProblem(StrEnum):
    """Why a style command did nothing."""

    NOT_FOUND = "not_found"  # no style of that name (`known` lists the saved ones)
    NOT_ALLOWED = "not_allowed"  # only its creator or an admin may change or delete it
    BAD_NAME = "bad_name"  # letters, digits, - and _, up to 40; not "none"
    NO_TEXT = "no_text"  # a style needs a prompt fragment
    TOO_LONG = "too_long"  # over MAX_STYLE_TEXT characters
    FULL = "full"  # it already has MAX_STYLE_REFERENCES references


class StyleRefused(Exception):
    """A style command was refused: `problem`, the `name` asked for, the `known` names."""

    def __init__(self, problem: StyleProblem, name: str, known: Sequence[str] = ()) -> None:
        super().__init__(f"{problem.value}: {name}")
        self.problem = problem
        self.name = name
        self.known = tuple(known)


async def _known(db: AsyncSession, team_id: str) -> list[str]:
    return [name for name, _text, _n in await repo.names(db, team_id)]


async def _find(db: AsyncSession, team_id: str, name: str) -> Style:
    found = await repo.find(db, team_id, name.lower())
    if found is None:
        raise StyleRefused(StyleProblem.NOT_FOUND, name, await _known(db, team_id))
    return found


async def save(
    sm: async_sessionmaker[AsyncSession],
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    name: str,
    text: str,
    is_admin: bool,
    moderator: moderation.Moderator | None = None,
) -> bool:
    """Save style `name` (case-insensitive) with prompt fragment `text`; True when new.

    Changing an existing style is for its creator or an admin. The fragment passes the
    content policy like a prompt. Raises StyleRefused (BAD_NAME, NO_TEXT, TOO_LONG,
    NOT_ALLOWED) or moderation.ModerationRefused."""
    name, text = validate(name, text)
    await moderation.check_request(
        moderator, sm, team_id=team_id, channel_id=channel_id, user_id=user_id, text=text
    )
    async with sm.begin() as db:
        existing = await repo.find(db, team_id, name)
        if existing and existing.created_by != user_id and not is_admin:
            raise StyleRefused(StyleProblem.NOT_ALLOWED, name)
        return await repo.save(db, team_id, name, text, user_id)


def validate(name: str, text: str) -> tuple[str, str]:
    """A style's name (lower case) and prompt fragment (stripped), checked. Raises
    StyleRefused (BAD_NAME: letters, digits, - and _, up to 40, not "none"; NO_TEXT;
    TOO_LONG: over MAX_STYLE_TEXT characters)."""
    name, text = name.lower(), text.strip()
    if not STYLE_NAME.fullmatch(name) or name == NONE:
        raise StyleRefused(StyleProblem.BAD_NAME, name)
    if not text:
        raise StyleRefused(StyleProblem.NO_TEXT, name)
    if len(text) > MAX_STYLE_TEXT:
        raise StyleRefused(StyleProblem.TOO_LONG, name)
    return name, text


async def listing(sm: async_sessionmaker[AsyncSession], team_id: str) -> list[tuple[str, str, int]]:
    """The workspace's styles by name: (name, fragment, number of references)."""
    async with sm() as db:
        return await repo.names(db, team_id)


async def show(sm: async_sessionmaker[AsyncSession], team_id: str, name: str) -> Style:
    """One style. Raises StyleRefused(NOT_FOUND) listing the known names."""
    async with sm() as db:
        return await _find(db, team_id, name)


async def delete(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    name: str,
    user_id: str,
    is_admin: bool,
    store: ImageStore | None = None,
) -> None:
    """Delete a style (its creator or an admin) and its reference files no row still uses
    (from `store`; None: files on this machine).
    Generations already made with it keep their inputs. Raises StyleRefused (NOT_FOUND,
    NOT_ALLOWED)."""
    async with sm.begin() as db:
        style = await _find(db, team_id, name)
        if style.created_by != user_id and not is_admin:
            raise StyleRefused(StyleProblem.NOT_ALLOWED, style.name)
        paths = await repo.remove(db, style.style_id)
    await policy_db.delete_unused_files(sm, paths, store)


async def add_reference(
    sm: async_sessionmaker[AsyncSession],
    store: ImageStore,
    team_id: str,
    name: str,
    data: bytes,
    label: str,
) -> int:
    """Add an image (encoded bytes, already checked by the caller) as a reference of style
    `name`; returns how many it has now. Raises StyleRefused (NOT_FOUND, FULL) or
    core.store.NotAnImage."""
    blob = await store.put(data)
    image = StoredImage("reference", label, str(blob.path), blob.mime, blob.width, blob.height)
    async with sm.begin() as db:
        style = await _find(db, team_id, name)
        if len(style.references) >= MAX_STYLE_REFERENCES:
            raise StyleRefused(StyleProblem.FULL, style.name)
        return await repo.add_reference(db, style.style_id, image)


async def set_default(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    channel_id: str,
    name: str | None,
    user_id: str,
) -> None:
    """Make style `name` the channel's default (None or "none" clears it); the caller
    checked that `user_id` is an admin. Raises StyleRefused(NOT_FOUND)."""
    async with sm.begin() as db:
        if name is None or name.lower() == NONE:
            await repo.set_channel_default(db, team_id, channel_id, None, user_id)
            return
        style = await _find(db, team_id, name)
        await repo.set_channel_default(db, team_id, channel_id, style.name, user_id)


async def resolve(
    sm: async_sessionmaker[AsyncSession], team_id: str, channel_id: str, requested: str | None
) -> Style | None:
    """The style a request uses: `requested` (a name, or "none" for none), else the
    channel's default (when it still exists). Raises StyleRefused(NOT_FOUND) for an
    unknown requested name, listing the known ones."""
    if requested == NONE:
        return None
    async with sm() as db:
        return await resolve_in(db, team_id, channel_id, requested)


async def resolve_in(
    db: AsyncSession, team_id: str, channel_id: str, requested: str | None
) -> Style | None:
    """`resolve` in the caller's session (one transaction with what it records)."""
    if requested == NONE:
        return None
    if requested:
        return await _find(db, team_id, requested)
    default = await repo.channel_default(db, team_id, channel_id)
    return await repo.find(db, team_id, default) if default else None


def styled_prompt(prompt: str, style: Style | None) -> str:
    """The provider prompt with the style's fragment appended."""
    if style is None:
        return prompt
    return f"{prompt.rstrip().rstrip('.')}. Style: {style.text}"


def inputs_note(style: Style) -> str | None:
    """The stored InputsNote of a first generation made with `style` (its name and how many
    reference images it sends, which count in the 5-image limit)."""
    return InputsNote(style=style.name, style_refs=len(style.references)).to_stored()


async def attach(db: AsyncSession, generation_id: int, prompt: str, style: Style | None) -> None:
    """Apply `style` to a just-queued first generation (same transaction): the provider
    prompt gets its fragment, its references become the generation's inputs, the result's
    note says so. Does nothing for None."""
    if style is None:
        return
    await repo.style_generation(db, generation_id, styled_prompt(prompt, style), inputs_note(style))
    await add_inputs(db, generation_id, list(style.references))
