"""The generation view loader: one generation, its session and images as plain data.

`load_view` runs inside an open session (so a use case reads the view in its own
transaction); `get_view` opens a read-only session for callers outside a use case
(the job engine).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import jobs as jobs_db
from core.db import review as review_db
from core.db.rows import ask_of, from_row
from core.models import ApprovalRow, GenerationRow, ImageRow, SessionRow
from core.policy import DEFAULT_POLICY
from core.ports import Failure, GenerationView, ImageView
from core.providers.registry import provider_label

_FROM_SESSION = ("team_id", "enterprise_id", "channel_id", "thread_ts", "owner_user_id")
"""GenerationView fields read from the session row (the rest from the generation row)."""


# Built once, values bound when they run (issue 13: every job's steps read the view).
_ROW = (
    select(GenerationRow)
    .where(GenerationRow.id == bindparam("generation_id"))
    .execution_options(populate_existing=True)
)
_SESSION = (
    select(SessionRow)
    .where(SessionRow.id == bindparam("session_id"))
    .execution_options(populate_existing=True)
)
_IMAGES = (
    select(ImageRow, ApprovalRow.user_id, ApprovalRow.approved_at)
    .outerjoin(ApprovalRow, ApprovalRow.image_id == ImageRow.id)
    .where(ImageRow.generation_id == bindparam("generation_id"))
    .order_by(ImageRow.index)
)


class GenerationGone(LookupError):
    """The generation (or its image) no longer exists."""


def image_label(version: int, index: int) -> str:
    """How a stored image is named in a thread: "v2 image 1" (`index` is 0-based)."""
    return f"v{version} image {index + 1}"


async def get_view(sm: async_sessionmaker[AsyncSession], generation_id: int) -> GenerationView:
    """The generation as a publisher sees it. Raises GenerationGone."""
    async with sm() as db:
        return await load_view(db, generation_id)


async def parent_label(db: AsyncSession, image_id: int | None) -> str | None:
    """The label ("v2 image 1") of the image a refinement edits, or None."""
    if image_id is None:
        return None
    image = await db.get(ImageRow, image_id)
    parent = await db.get(GenerationRow, image.generation_id) if image else None
    return image_label(parent.version, image.index) if image and parent else None


async def load_view(db: AsyncSession, generation_id: int) -> GenerationView:
    """Build a GenerationView inside an open session. Raises GenerationGone."""
    row = await db.scalar(_ROW, {"generation_id": generation_id})
    if row is None:
        raise GenerationGone(generation_id)
    session = await db.scalar(_SESSION, {"session_id": row.session_id})
    assert session is not None
    images = (await db.execute(_IMAGES, {"generation_id": generation_id})).all()
    waiting, waiting_number = await jobs_db.waiting_of(db, row)
    view = from_row(
        GenerationView,
        row,
        generation_id=row.id,
        **{name: getattr(session, name) for name in _FROM_SESSION},
        ask=ask_of(row),
        provider_label=provider_label(row.provider, row.model),
        waiting_reason=waiting,
        waiting_number=waiting_number,
        failure=Failure.from_json(row.failure),
        parent_label=await parent_label(db, row.parent_image_id),
        review=DEFAULT_POLICY,  # the channel's policy: filled in by review_db.with_review
        changes_requested=(),
        images=tuple(
            from_row(
                ImageView,
                img,
                image_id=img.id,
                path=Path(img.path),
                file_id=img.slack_file_id,
                approved_by=approver,
                approved_at=approved_at,
                votes=(),  # filled in by review_db.with_review
            )
            for img, approver, approved_at in images
        ),
    )
    return await review_db.with_review(db, view)
