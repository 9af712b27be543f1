"""The schema: SQLAlchemy 2.0 declarative tables.

Times are UTC epoch seconds (float) written with the database clock (`db_now`),
so leases taken by different processes compare against one clock.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import FunctionElement


class db_now(FunctionElement[float]):
    """The database's current time as UTC epoch seconds (float, sub-second)."""

    type = Float()
    inherit_cache = True


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_now, "postgresql")
def _db_now_pg(element: db_now, compiler: Any, **kw: Any) -> str:
    return "extract(epoch from clock_timestamp())"


@compiles(db_now)
def _db_now_default(element: db_now, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class GenerationState:
    """The states of a generation job (see core.jobs for the transitions)."""

    QUEUED = "queued"  # waiting to be submitted
    SUBMITTED = "submitted"  # the provider has the task; provider_task_id is set
    COMPLETED = "completed"  # images are in the store; the result is not posted yet
    POSTED = "posted"  # the result is in the thread (terminal)
    FAILED = "failed"  # terminal, `error` says why
    CANCELLED = "cancelled"  # terminal

    ACTIVE = (QUEUED, SUBMITTED, COMPLETED)
    TERMINAL = (POSTED, FAILED, CANCELLED)


class SessionRow(Base):
    """One imagine session = one Slack thread. `thread_ts` is set once the root message exists."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("channel_id", "thread_ts", name="uq_sessions_thread"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32), default=None)
    owner_user_id: Mapped[str] = mapped_column(String(32))
    # The image the next refinement starts from when someone picked it with "Refine this".
    base_image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL", use_alter=True), default=None
    )
    created_at: Mapped[float] = mapped_column(Float, server_default=db_now())


class GenerationRow(Base):
    """One iteration in a session, and the durable job that produces it."""

    __tablename__ = "generations"
    __table_args__ = (UniqueConstraint("session_id", "version", name="uq_generations_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # imagine | regenerate | refine
    requested_by: Mapped[str] = mapped_column(String(32))
    parent_generation_id: Mapped[int | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL"), default=None
    )
    parent_image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL", use_alter=True), default=None
    )
    prompt: Mapped[str] = mapped_column(Text)  # the session's original prompt
    instruction: Mapped[str | None] = mapped_column(Text, default=None)  # the refining reply
    provider_prompt: Mapped[str | None] = mapped_column(Text, default=None)  # prompt + chain
    inputs_note: Mapped[str | None] = mapped_column(Text, default=None)  # references used
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # flags.Params without the seed
    seed: Mapped[int] = mapped_column(BigInteger)  # 0 … 2**32 - 1 (issue 14: BIGINT)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(64), default=None)
    provider_task_id: Mapped[str | None] = mapped_column(String(128), default=None)
    state: Mapped[str] = mapped_column(String(16), default=GenerationState.QUEUED, index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    error_kind: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    # why a queued job waits: a core.ports.WaitReason code
    waiting: Mapped[str | None] = mapped_column(Text, default=None)
    # why a job failed: core.ports.Failure.to_json() (reason code and its data)
    failure: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    latency_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    response_url: Mapped[str | None] = mapped_column(Text, default=None)
    status_ts: Mapped[str | None] = mapped_column(String(32), default=None)
    result_ts: Mapped[str | None] = mapped_column(String(32), default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    next_attempt_at: Mapped[float] = mapped_column(Float, server_default=db_now(), index=True)
    created_at: Mapped[float] = mapped_column(Float, server_default=db_now())
    submitted_at: Mapped[float | None] = mapped_column(Float, default=None)
    completed_at: Mapped[float | None] = mapped_column(Float, default=None)
    finished_at: Mapped[float | None] = mapped_column(Float, default=None)


class ImageRow(Base):
    """One image of a generation, kept in the content-addressed image store."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("generation_id", "index", name="uq_images_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)  # 0-based position in the generation
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    slack_file_id: Mapped[str | None] = mapped_column(String(32), default=None)


class InputRow(Base):
    """An image given to the provider with a generation: the base image, a reference or the
    mask, in order (`position`), as a file in the image store. Snapshotted at creation so a
    retry or restart sends the same inputs."""

    __tablename__ = "generation_inputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # base | reference | mask
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)  # "v2 image 1", "sketch.png"
    path: Mapped[str] = mapped_column(Text)
    mime: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)


class AttachmentRow(Base):
    """An image someone posted in a session's thread, waiting to be used by the next
    refinement (`used_by_generation_id` is set when a refinement takes or drops it)."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # reference | mask
    name: Mapped[str] = mapped_column(Text)
    slack_file_id: Mapped[str | None] = mapped_column(String(32), default=None)
    posted_by: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    mime: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    used_by_generation_id: Mapped[int | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[float] = mapped_column(Float, server_default=db_now())


class ApprovalRow(Base):
    """Who approved an image and when; at most one approval per image."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[str] = mapped_column(String(32))
    approved_at: Mapped[float] = mapped_column(Float, server_default=db_now())


class DeliveryRow(Base):
    """A Slack delivery already handled (event_id), so a retried delivery does nothing twice."""

    __tablename__ = "processed_deliveries"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[float] = mapped_column(Float, server_default=db_now())
