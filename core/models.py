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
    # The Enterprise Grid org of the workspace (None outside Grid): with OAuth, its
    # installation's token is used when the app was installed org-wide.
    enterprise_id: Mapped[str | None] = mapped_column(String(32), default=None)
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


class EffectRow(Base):
    """A side effect of publishing a generation (a message posted, files shared), recorded
    before it is made so a restart can tell "never tried" from "tried, outcome unknown".

    `effect` is a core.ports.Effect value (root, status, upload, result); `attempted_at` the
    first try (database clock, UTC epoch seconds), `attempts` how many tries; `ref` what the
    platform answered (a message ts) and `done_at` when that answer was recorded. An upload
    keeps the file ids reserved for it (`file_ids`: {"index": "file id"}) before they are
    shared. A row with `done_at` None is an intent whose outcome is unknown.
    """

    __tablename__ = "side_effects"
    __table_args__ = (UniqueConstraint("generation_id", "effect", name="uq_side_effects_effect"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    effect: Mapped[str] = mapped_column(String(16))
    attempted_at: Mapped[float] = mapped_column(Float, server_default=db_now())
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    file_ids: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    ref: Mapped[str | None] = mapped_column(String(32), default=None)
    done_at: Mapped[float | None] = mapped_column(Float, default=None)


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


# Content policy, brand styles and privacy (issue 12).


class StyleRow(Base):
    """A named brand style of a workspace: a prompt fragment (and reference images)."""

    __tablename__ = "styles"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_styles_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))  # lower case
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float, server_default=db_now())


class StyleReferenceRow(Base):
    """A reference image of a style (at most 4), as a file in the image store."""

    __tablename__ = "style_references"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    style_id: Mapped[int] = mapped_column(ForeignKey("styles.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 0-based, in the order they were added
    label: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    mime: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)  # pixels
    height: Mapped[int] = mapped_column(Integer)  # pixels


class ChannelStyleRow(Base):
    """The style a channel applies by default (set by an admin)."""

    __tablename__ = "channel_styles"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    style_name: Mapped[str] = mapped_column(String(64))
    set_by: Mapped[str] = mapped_column(String(32))


# ---------------------------------------------------------------------------------------
# Team review (issue 10): policies, votes, change requests, gallery posts, the audit trail
# ---------------------------------------------------------------------------------------


class ReviewPolicyRow(Base):
    """A channel's review policy. No row = the default (anyone, 1 approval, no gallery,
    self-approval on). Reviewers are Slack user ids and user group ids."""

    __tablename__ = "review_policies"
    __table_args__ = (UniqueConstraint("team_id", "channel_id", name="uq_review_policy_channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    reviewer_users: Mapped[list[Any]] = mapped_column(JSON)
    reviewer_groups: Mapped[list[Any]] = mapped_column(JSON)
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    self_approval: Mapped[bool] = mapped_column(Boolean, default=True)
    gallery_channel_id: Mapped[str | None] = mapped_column(String(32), default=None)
    updated_by: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[float] = mapped_column(Float, server_default=db_now())


class ReviewVoteRow(Base):
    """One person's approval of one image (counted once per person). When the votes reach
    the policy's count the image gets its `ApprovalRow` (fully approved, once)."""

    __tablename__ = "review_votes"
    __table_args__ = (UniqueConstraint("image_id", "user_id", name="uq_review_votes_person"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    voted_at: Mapped[float] = mapped_column(Float, server_default=db_now())


class ChangeRequestRow(Base):
    """A reviewer asked for changes on an image: the comment and the version it became."""

    __tablename__ = "change_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    image_index: Mapped[int] = mapped_column(Integer)  # 0-based, as ImageRow.index
    user_id: Mapped[str] = mapped_column(String(32))  # the reviewer
    comment: Mapped[str] = mapped_column(Text)
    new_generation_id: Mapped[int | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[float] = mapped_column(Float, server_default=db_now())


class GalleryPostRow(Base):
    """The intent to publish a fully approved image to a gallery channel, recorded before
    the post (one per image): pending → posting (claimed) → posted. A refused post goes
    back to pending with `attempts` counted, `next_attempt_at` (UTC epoch seconds, None:
    now) and the platform's `last_error`; after too many tries it is "unreachable"."""

    __tablename__ = "gallery_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    approver: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    message_ts: Mapped[str | None] = mapped_column(String(32), default=None)
    claimed_at: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[float] = mapped_column(Float, server_default=db_now())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_error: Mapped[str | None] = mapped_column(String(64), default=None)


class AuditRow(Base):
    """The audit trail: one row per review or policy event. Review (issue 10): approve,
    approved, changes_requested, published, publish_failed, policy_set, policy_off, with the
    generation/image and the review `policy` in force. Content policy and privacy (issue 12):
    moderation_refused, result_withheld, retention, forget_me, whose `detail` holds codes and
    counts only, never what a person typed. `team_id`/`channel_id` are None for events of no
    one channel (retention); `user_id` is None for the system or a forgotten person."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str | None] = mapped_column(String(32), default=None)
    channel_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    action: Mapped[str] = mapped_column(String(32), index=True)
    generation_id: Mapped[int | None] = mapped_column(Integer, default=None)
    image_id: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[float] = mapped_column(Float, server_default=db_now(), index=True)


# ---------------------------------------------------------------------------------------
# Cost control (issue 11): what each generation is estimated to cost and who asked, channel
# quota overrides, the per-workspace lock row of the quota check, and budget alerts sent.
# ---------------------------------------------------------------------------------------


class CostRow(Base):
    """The cost side of one generation, written in the transaction that queues it.

    `created_at` is the quota clock (UTC epoch seconds) at that moment, which decides the
    day and month it counts in. `estimated_usd` is None when the model has no price
    ("unpriced"). `request_key` identifies the same person, channel, prompt and flags
    (duplicate detection); `cache_key` the provider request, set at submit time when the
    provider is deterministic; `reused_from_id` the generation whose images were reused.
    """

    __tablename__ = "generation_costs"

    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[str] = mapped_column(String(32), index=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(64))
    images: Mapped[int] = mapped_column(Integer)
    estimated_usd: Mapped[float | None] = mapped_column(Float, default=None)
    request_key: Mapped[str] = mapped_column(String(64), index=True)
    seed_fixed: Mapped[bool] = mapped_column(Boolean, default=False)
    cache_key: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    reused_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[float] = mapped_column(Float, index=True)


class ChannelQuotaRow(Base):
    """A channel's quota overrides (`/imagine quota set`); None keeps the global setting."""

    __tablename__ = "channel_quotas"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_daily_images: Mapped[int | None] = mapped_column(Integer, default=None)
    monthly_usd: Mapped[float | None] = mapped_column(Float, default=None)
    set_by: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[float] = mapped_column(Float, server_default=db_now())


class QuotaLockRow(Base):
    """One row per workspace, written first by every quota check so concurrent checks of
    one workspace run one after the other (the write lock on SQLite, a row lock on
    PostgreSQL)."""

    __tablename__ = "quota_locks"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    touched_at: Mapped[float] = mapped_column(Float)


class BudgetAlertRow(Base):
    """The 80 % budget alert of a workspace for a month ("2026-11"): recorded when the
    threshold is crossed, `sent_at` set when the admins' DMs were claimed for sending."""

    __tablename__ = "budget_alerts"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    spent_usd: Mapped[float] = mapped_column(Float)
    limit_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float, server_default=db_now())
    sent_at: Mapped[float | None] = mapped_column(Float, default=None)


# ---------------------------------------------------------------------------------------
# Privacy (issue 12): the bot's own Slack messages and files to delete after a forget-me.
# ---------------------------------------------------------------------------------------


class DeletionRow(Base):
    """One platform message (`kind` "message": `channel_id` and `ref` = its ts) or file
    (`kind` "file": `ref` = the file id, `channel_id` "") of the bot to delete, recorded in
    the forget-me transaction, before any deletion is made. A deleter claims it
    (`claimed_at`, `attempts`) before the call and sets `done_at` and `outcome` ("deleted",
    "gone", or the platform's refusal code) after it, so a restart never deletes twice."""

    __tablename__ = "pending_deletions"
    __table_args__ = (
        UniqueConstraint("team_id", "kind", "channel_id", "ref", name="uq_pending_deletions_ref"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    channel_id: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float, server_default=db_now())
    claimed_at: Mapped[float | None] = mapped_column(Float, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[float | None] = mapped_column(Float, default=None)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)


# ---------------------------------------------------------------------------------------
# App Home refresh (issue 10): who has opened the Home tab (republished when items change).
# ---------------------------------------------------------------------------------------


class HomeSeenRow(Base):
    """A person of a workspace who has opened the app's Home tab at least once (`seen_at`:
    the latest time, UTC epoch seconds). Only their Home tabs are republished when an item
    on them changes."""

    __tablename__ = "home_seen"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seen_at: Mapped[float] = mapped_column(Float)  # written with db_now()


# ---------------------------------------------------------------------------------------
# Intake (issue 13): new-session requests stored before their ack, started right after.
# ---------------------------------------------------------------------------------------


class InboxRow(Base):
    """A new-session request (`/imagine`, a mention) acknowledged to Slack and not started
    yet (core.intake): stored in one group commit before the ack, removed in the
    transaction that records its session (or its refusal). Rows left by a stopped process
    are started when the next one starts. `seq` is the arrival order; `token` names the
    request to the process waiting for its outcome; `request` is `StartRequest.to_stored`."""

    __tablename__ = "command_inbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[float] = mapped_column(Float)  # UTC epoch seconds
