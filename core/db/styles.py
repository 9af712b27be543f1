"""Persistence of brand styles (issue 12): styles, their reference images, channel defaults.

Functions over an open `AsyncSession` (the use case owns the transaction); plain data in
and out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.refinement import StoredImage, image_at
from core.db.views import image_label
from core.models import ChannelStyleRow, GenerationRow, StyleReferenceRow, StyleRow


@dataclass(frozen=True)
class Style:
    """A saved style: its name (lower case), prompt fragment, creator and reference images
    (role "reference", in order)."""

    style_id: int
    name: str
    text: str
    created_by: str
    references: tuple[StoredImage, ...] = ()


async def find(db: AsyncSession, team_id: str, name: str) -> Style | None:
    """The workspace's style `name` with its references, or None."""
    row = await db.scalar(
        select(StyleRow).where(StyleRow.team_id == team_id, StyleRow.name == name)
    )
    if row is None:
        return None
    refs = (
        await db.scalars(
            select(StyleReferenceRow)
            .where(StyleReferenceRow.style_id == row.id)
            .order_by(StyleReferenceRow.position)
        )
    ).all()
    images = tuple(
        StoredImage("reference", r.label, r.path, r.mime, r.width, r.height) for r in refs
    )
    return Style(row.id, row.name, row.text, row.created_by, images)


async def save(db: AsyncSession, team_id: str, name: str, text: str, user_id: str) -> bool:
    """Create the style, or change the text of an existing one; True when it was new."""
    row = await db.scalar(
        select(StyleRow).where(StyleRow.team_id == team_id, StyleRow.name == name)
    )
    if row is None:
        db.add(StyleRow(team_id=team_id, name=name, text=text, created_by=user_id))
        await db.flush()
        return True
    row.text = text
    return False


async def names(db: AsyncSession, team_id: str) -> list[tuple[str, str, int]]:
    """Every style of the workspace by name: (name, text, number of references)."""
    counts = (
        select(StyleReferenceRow.style_id, func.count().label("n"))
        .group_by(StyleReferenceRow.style_id)
        .subquery()
    )
    rows = await db.execute(
        select(StyleRow.name, StyleRow.text, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.style_id == StyleRow.id)
        .where(StyleRow.team_id == team_id)
        .order_by(StyleRow.name)
    )
    return [(name, text, int(n)) for name, text, n in rows.all()]


async def remove(db: AsyncSession, style_id: int) -> list[str]:
    """Delete a style and its references; returns the reference files' paths."""
    paths = list(
        (
            await db.scalars(
                select(StyleReferenceRow.path).where(StyleReferenceRow.style_id == style_id)
            )
        ).all()
    )
    await db.execute(delete(StyleReferenceRow).where(StyleReferenceRow.style_id == style_id))
    await db.execute(delete(StyleRow).where(StyleRow.id == style_id))
    return paths


async def add_reference(db: AsyncSession, style_id: int, image: StoredImage) -> int:
    """Append a reference image to a style; returns how many it has now."""
    count = await db.scalar(select(func.count()).where(StyleReferenceRow.style_id == style_id))
    db.add(
        StyleReferenceRow(
            style_id=style_id,
            position=int(count or 0),
            label=image.label,
            path=image.path,
            mime=image.mime,
            width=image.width,
            height=image.height,
        )
    )
    return int(count or 0) + 1


async def channel_default(db: AsyncSession, team_id: str, channel_id: str) -> str | None:
    """The name of the channel's default style, or None."""
    return await db.scalar(
        select(ChannelStyleRow.style_name).where(
            ChannelStyleRow.team_id == team_id, ChannelStyleRow.channel_id == channel_id
        )
    )


async def channel_defaults(
    db: AsyncSession, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The default style names of these (team id, channel id) pairs in one query (a burst of
    commands from many channels, issue 13); a channel without one is absent."""
    if not pairs:
        return {}
    rows = await db.execute(
        select(ChannelStyleRow.team_id, ChannelStyleRow.channel_id, ChannelStyleRow.style_name)
        .where(ChannelStyleRow.team_id.in_({team for team, _ in pairs}))
        .where(ChannelStyleRow.channel_id.in_({channel for _, channel in pairs}))
    )
    wanted = set(pairs)
    return {(t, c): name for t, c, name in rows if (t, c) in wanted}


async def set_channel_default(
    db: AsyncSession, team_id: str, channel_id: str, name: str | None, user_id: str
) -> None:
    """Set (or with None clear) the channel's default style."""
    await db.execute(
        delete(ChannelStyleRow).where(
            ChannelStyleRow.team_id == team_id, ChannelStyleRow.channel_id == channel_id
        )
    )
    if name is not None:
        db.add(
            ChannelStyleRow(team_id=team_id, channel_id=channel_id, style_name=name, set_by=user_id)
        )


async def result_image(db: AsyncSession, generation_id: int, index: int) -> StoredImage | None:
    """Image `index` (0-based) of a generation as a style reference ("v2 image 1", the same
    image-store file), or None when it does not exist."""
    found = await image_at(db, generation_id, index)
    if found is None:
        return None
    image, generation = found
    label = image_label(generation.version, image.index)
    return StoredImage("reference", label, image.path, image.mime, image.width, image.height)


async def style_generation(
    db: AsyncSession, generation_id: int, provider_prompt: str, inputs_note: str | None
) -> None:
    """Give a generation the provider prompt and the stored InputsNote of its style."""
    await db.execute(
        update(GenerationRow)
        .where(GenerationRow.id == generation_id)
        .values(provider_prompt=provider_prompt, inputs_note=inputs_note)
    )
