"""Use cases of the refinement loop: a reply (its text and its images) refines the
session's base image, "Refine this" picks the base, and the one rule that sizes a mask.

Images posted in a thread become references (at most MAX_INPUTS per generation, the base
included, the newest kept) or the mask (a PNG with transparency, sized to the image it
edits). Each use case writes in one transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import refinement as threads
from core.db import sessions as repo
from core.db.refinement import SessionRef, StoredImage
from core.flags import Params
from core.images import (
    DEFAULT_MAX_PIXELS,
    ImageLimits,
    ImageRejected,
    PreparedMask,
    check_reference,
    prepare_mask,
)
from core.moderation import Moderator, check_reply
from core.ports import Ask, InputsNote
from core.prompts import compose_prompt
from core.quotas import CostPolicy, admit
from core.sessions import ActionRefused, Conversation, Refusal, check_target, new_seed
from core.store import ImageStore, NotAnImage
from core.styles import Style, styled_prompt

MAX_INPUTS = 5  # images sent with one generation, the base image included (DESIGN.md)

__all__ = [
    "MAX_INPUTS",
    "Accepted",
    "PickedBase",
    "PostedImage",
    "RefineOutcome",
    "ReplyOutcome",
    "SessionRef",
    "find_session",
    "pick_base",
    "reply_defaults",
    "size_mask",
    "take_reply",
]


async def size_mask(
    data: bytes,
    name: str,
    *,
    base: tuple[int, int] | None,
    own: tuple[int, int],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PreparedMask:
    """The mask-sizing rule: a mask is checked and sized to the image it edits, the base
    image (`base`, width × height in pixels) when there is one, else the generation's own
    size (`own`). The mask's header is checked against `max_pixels` (width × height) before
    it is decoded. Runs Pillow in a thread. Raises ImageRejected (see prepare_mask)."""
    return await asyncio.to_thread(prepare_mask, data, name, base or own, max_pixels=max_pixels)


async def find_session(
    sm: async_sessionmaker[AsyncSession], channel_id: str, thread_ts: str
) -> SessionRef | None:
    """The imagine session whose thread this is, or None (not ours: ignore it)."""
    async with sm() as db:
        return await threads.find_session(db, channel_id, thread_ts)


async def reply_defaults(sm: async_sessionmaker[AsyncSession], session_id: int) -> Params:
    """The parameters a reply's flags start from: the session's first version's (a reply's
    flags change only its own generation, so no seed), with the base image's aspect ratio
    (an edit keeps the picture's shape)."""
    async with sm() as db:
        first = await threads.first_version(db, session_id)
        base = await threads.base_image(db, session_id)
    params = replace(first.params, seed=None) if first else Params()
    if base is not None:
        params = replace(params, aspect_ratio=base.params.aspect_ratio)
    return params


@dataclass(frozen=True)
class PickedBase:
    """A "Refine this" click: the session (with its thread) and the picked image's label."""

    session: SessionRef
    label: str


async def pick_base(
    sm: async_sessionmaker[AsyncSession], generation_id: int, index: int, where: Conversation
) -> PickedBase:
    """Make image `index` (0-based) of a generation its session's base ("Refine this").

    Raises ActionRefused (GONE when the generation or image does not exist or the session
    has no thread, WRONG_CONVERSATION)."""
    async with sm.begin() as db:
        await check_target(db, generation_id, where)
        picked = await threads.set_base(db, generation_id, index)
        session = await threads.session_ref(db, picked[0]) if picked else None
        if picked is None or session is None:
            raise ActionRefused(Refusal.GONE)
        return PickedBase(session, picked[1])


@dataclass(frozen=True)
class PostedImage:
    """A file someone posted in the thread, downloaded: its name, bytes, whether it was
    marked as the mask, and the platform's file id."""

    name: str
    data: bytes
    mask: bool
    file_id: str | None = None


@dataclass(frozen=True)
class Accepted:
    """A posted image kept for the next refinement. A mask of another size than the image
    it edits was scaled: `scaled_from` and `scaled_to` (pixels) and `target`, the base's
    label ("v2 image 1"), or None for the session's first image."""

    name: str
    role: str  # reference | mask
    scaled_from: tuple[int, int] | None = None
    scaled_to: tuple[int, int] | None = None
    target: str | None = None


@dataclass(frozen=True)
class RefineOutcome:
    """A queued refinement: its id and version, what it starts from and what it uses."""

    generation_id: int
    version: int
    base_label: str | None
    used: tuple[str, ...]
    dropped: tuple[str, ...]
    mask: str | None


@dataclass(frozen=True)
class ReplyOutcome:
    """What a reply did: the images kept, the problems (the refusal of each refused file),
    how many images now wait for the next refinement, and the refinement queued (None
    when the reply had no instruction)."""

    accepted: tuple[Accepted, ...]
    problems: tuple[ImageRejected | NotAnImage, ...]
    waiting: int
    refined: RefineOutcome | None


@dataclass(frozen=True)
class _Kept:
    image: StoredImage
    sha256: str
    file_id: str | None
    accepted: Accepted


async def take_reply(
    sm: async_sessionmaker[AsyncSession],
    store: ImageStore,
    session: SessionRef,
    *,
    user_id: str,
    instruction: str,
    params: Params,
    images: list[PostedImage],
    limits: ImageLimits,
    provider: str,
    model: str | None,
    moderator: Moderator | None = None,
    style: Style | None = None,
    cost: CostPolicy | None = None,
) -> ReplyOutcome:
    """Take a reply in a session's thread: check and store its images (references, or the
    mask sized to the current base), record them, and when `instruction` is not empty
    queue a refinement that uses them, all recorded in one transaction.

    A refused image (ImageRejected, NotAnImage) is kept in `problems` (bot words it); the
    rest of the reply still counts. Raises ModerationRefused (nothing recorded but the
    audit row) when `moderator`'s policy flags the full prompt or (MODERATION_IMAGES) images.
    A `style` (core.styles) adds its fragment and references to the refinement. A
    refinement over a quota raises core.quotas.QuotaExceeded: nothing of the reply is
    recorded then.
    """
    await check_reply(
        moderator,
        sm,
        session,
        user_id=user_id,
        instruction=instruction,
        images=[i.data for i in images],
    )
    async with sm() as db:
        base = await threads.base_image(db, session.session_id)
        first = await threads.first_version(db, session.session_id)
    own = (first.params if first else Params()).size()
    kept: list[_Kept] = []
    problems: list[ImageRejected | NotAnImage] = []
    for posted in images:
        try:
            kept.append(await _keep(store, posted, limits, base, own))
        except (ImageRejected, NotAnImage) as err:
            problems.append(err)
    ask = _Ask(user_id, instruction, params, provider, model, style)
    waiting, refined = await _record(sm, session.session_id, kept, ask, cost)
    return ReplyOutcome(tuple(k.accepted for k in kept), tuple(problems), waiting, refined)


async def _keep(
    store: ImageStore,
    posted: PostedImage,
    limits: ImageLimits,
    base: threads.BaseImage | None,
    own: tuple[int, int],
) -> _Kept:
    """Check one posted image and put it in the image store."""
    if posted.mask:
        base_size = (base.width, base.height) if base else None
        prepared = await size_mask(
            posted.data, posted.name, base=base_size, own=own, max_pixels=limits.max_pixels
        )
        blob = await store.put(prepared.data)
        accepted = Accepted(posted.name, "mask")
        if prepared.scaled_from:
            size = (prepared.width, prepared.height)
            target = base.label if base else None
            accepted = Accepted(posted.name, "mask", prepared.scaled_from, size, target)
    else:
        await asyncio.to_thread(check_reference, posted.data, posted.name, limits)
        blob = await store.put(posted.data)
        accepted = Accepted(posted.name, "reference")
    image = StoredImage(
        accepted.role, posted.name, str(blob.path), blob.mime, blob.width, blob.height
    )
    return _Kept(image, blob.sha256, posted.file_id, accepted)


@dataclass(frozen=True)
class _Ask:
    """What a reply asks of the next version: who, the instruction (may be empty), the
    params, the provider and model (IMAGE_MODEL), and the style in force."""

    user_id: str
    instruction: str
    params: Params
    provider: str
    model: str | None
    style: Style | None


@repo.retry_version_race
async def _record(
    sm: async_sessionmaker[AsyncSession],
    session_id: int,
    kept: list[_Kept],
    ask: _Ask,
    cost: CostPolicy | None = None,
) -> tuple[int, RefineOutcome | None]:
    """One transaction: record the kept images, then queue the refinement (if any)."""
    async with sm.begin() as db:
        for item in kept:
            await threads.add_attachment(
                db,
                session_id,
                item.image,
                sha256=item.sha256,
                posted_by=ask.user_id,
                slack_file_id=item.file_id,
            )
        refined = None
        if ask.instruction:
            refined = await _queue_refinement(db, session_id, ask)
            await admit(db, cost, refined.generation_id, ask.params)
        return await threads.count_waiting(db, session_id), refined


async def _queue_refinement(db: AsyncSession, session_id: int, ask: _Ask) -> RefineOutcome:
    """Queue a new version that edits the session's current base with `instruction`.

    Takes the images posted since the last refinement: the base counts as one of at most
    MAX_INPUTS images, the newest references win, the newest mask is used; every waiting
    attachment is marked as taken (used or dropped), so the next reply starts clean.
    A style's references take slots before the posted references.
    """
    instruction, style = ask.instruction, ask.style
    base = await threads.base_image(db, session_id)
    first = await threads.first_version(db, session_id)
    original = first.prompt if first else instruction
    chain = [
        *await threads.instruction_chain(db, base.generation_id if base else None),
        instruction,
    ]
    waiting = await threads.waiting_attachments(db, session_id)
    style_refs = list(style.references) if style else []
    used, dropped, mask = _pick_inputs(waiting, MAX_INPUTS - (1 if base else 0) - len(style_refs))
    asked = Ask(
        original,
        ask.params,
        ask.provider,
        ask.model,
        instruction=instruction,
        provider_prompt=styled_prompt(
            compose_prompt(original, chain, has_base=base is not None), style
        ),
        inputs_note=_inputs_note(base is not None, used, dropped, mask, style),
        parent_image_id=base.image_id if base else None,
    )
    new = repo.NewGeneration.asked(
        session_id,
        "refine",
        ask.user_id,
        asked,
        random_seed=new_seed(),
        parent_generation_id=base.generation_id if base else None,
    )
    generation_id, version = await repo.add_generation(db, new)
    given = [*([base.image] if base else []), *style_refs, *used, *([mask] if mask else [])]
    await threads.add_inputs(db, generation_id, given)
    await threads.take_attachments(
        db, [a.attachment_id for a in waiting if a.attachment_id is not None], generation_id
    )
    return RefineOutcome(
        generation_id,
        version,
        base.label if base else None,
        tuple(a.label for a in used),
        tuple(a.label for a in dropped),
        mask.label if mask else None,
    )


def _pick_inputs(
    waiting: list[StoredImage], slots: int
) -> tuple[list[StoredImage], list[StoredImage], StoredImage | None]:
    """(references used, images dropped, mask): the newest `slots` references win, the
    newest mask is used, the rest are dropped."""
    references = [a for a in waiting if a.role == "reference"]
    masks = [a for a in waiting if a.role == "mask"]
    used, dropped = references[:slots][::-1], references[slots:][::-1]
    return used, dropped + masks[1:], masks[0] if masks else None


def _inputs_note(
    has_base: bool,
    used: list[StoredImage],
    dropped: list[StoredImage],
    mask: StoredImage | None,
    style: Style | None,
) -> InputsNote:
    """The InputsNote of a refinement (stored as None when it took no posted image and no
    style)."""
    return InputsNote(
        used=tuple(a.label for a in used),
        dropped=tuple(a.label for a in dropped),
        mask=mask.label if mask else None,
        has_base=has_base,
        limit=MAX_INPUTS,
        style=style.name if style else None,
        style_refs=len(style.references) if style else 0,
    )
