"""The job engine's queries and writes: claims and leases, guarded transitions, results.

Every write to a claimed job is guarded by its lease (`WHERE lease_owner = owner`): a
worker that lost its lease gets LeaseLost and must stop touching the job. Times come from
the database clock (`db_now`), so leases taken by different processes compare against one
clock. Functions take a sessionmaker (one transaction each) or, where a caller already has
one open, an AsyncSession; they return plain data (`Job`, `JobInput`, numbers).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Integer,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ClauseElement

from core.db import effects
from core.db.rows import ask_of, from_row
from core.models import (
    EffectRow,
    GenerationRow,
    GenerationState,
    ImageRow,
    SessionRow,
    db_now,
)
from core.ports import Ask, Effect, Failure, WaitReason
from core.store import StoredBlob

S = GenerationState
Maker = async_sessionmaker[AsyncSession]  # the sessionmaker every function here takes

# Issue 13: the statements of every job's steps are built once, their values bound when
# they run. Building a statement and its cache key anew on each call cost more of the
# event loop than SQLite's own work (py-spy, 1,000 jobs starting: a third of the main
# thread). Their UPDATEs run with `effects.NO_SYNC`: no function here holds a loaded row
# it writes to.


class LeaseLost(Exception):
    """Another worker owns the job now; this worker must stop touching it."""


@dataclass(frozen=True)
class Job:
    """What the engine reads of a generation job (a snapshot of its row).

    `ask` is what was asked for (`ask.params.seed` the seed used, always set; the image size
    in pixels is `ask.params.size()`, which the row's width and height were stored from);
    `state` is a GenerationState value; `waiting` a WaitReason code or None; `status_ts` the
    status message's ts, None until the job's thread is open.
    """

    id: int
    session_id: int
    state: str
    cancel_requested: bool
    ask: Ask
    provider_task_id: str | None
    attempts: int
    polls: int
    progress: int
    waiting: str | None
    lease_owner: str | None
    status_ts: str | None = None


def _claimable() -> Any:
    return or_(GenerationRow.lease_owner.is_(None), GenerationRow.lease_expires_at < db_now())


# Reasons a queued job is parked for: it is not claimed when due but admitted (`admit`)
# when a slot frees, its thread's older version ends or the breaker lets calls through.
PARKED = (WaitReason.SLOT.value, WaitReason.THREAD.value, WaitReason.BREAKER.value)
# Of those, the reasons of a job waiting for the provider (a slot, the breaker): it goes in
# queue order with the provider's other jobs, before any newer one.
FOR_PROVIDER = (WaitReason.SLOT.value, WaitReason.BREAKER.value)


def _not_parked() -> Any:
    return or_(
        GenerationRow.state != S.QUEUED,
        GenerationRow.waiting.is_(None),
        GenerationRow.waiting.not_in(PARKED),
        GenerationRow.cancel_requested.is_(True),
    )


async def _take(
    db: AsyncSession, ids: list[int], owner: str, lease: float, **values: Any
) -> list[int]:
    """Write `owner`'s lease on the claimable rows among `ids`; the ids it took, in order."""
    if not ids:
        return []
    result = await db.execute(
        update(GenerationRow)
        .where(GenerationRow.id.in_(ids), _claimable())
        .values(lease_owner=owner, lease_expires_at=db_now() + lease, **values)
        .execution_options(**effects.NO_SYNC)
    )
    if result.rowcount == len(ids):
        return ids
    taken = set(
        await db.scalars(
            select(GenerationRow.id).where(
                GenerationRow.id.in_(ids), GenerationRow.lease_owner == owner
            )
        )
    )
    return [i for i in ids if i in taken]


async def claim_many(
    sm: Maker, owner: str, lease_seconds: float, exclude: Collection[int], limit: int
) -> list[int]:
    """Take the lease on up to `limit` claimable jobs (active, due, no live lease, not parked
    waiting for admission, not in `exclude`), most overdue first, for `lease_seconds`; their
    ids (empty when there is none or other workers won them).

    On PostgreSQL the candidate rows are locked with `SELECT … FOR UPDATE SKIP LOCKED`, so
    workers claiming at the same moment each get different jobs instead of queueing
    behind one row lock (https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE);
    SQLite has one writer at a time and ignores the clause. The UPDATE re-checks the lease
    either way. One SELECT and one UPDATE for the whole batch."""
    if limit <= 0:
        return []
    async with sm.begin() as db:
        ids = list(
            await db.scalars(
                select(GenerationRow.id)
                .where(
                    GenerationRow.state.in_(S.ACTIVE),
                    GenerationRow.next_attempt_at <= db_now(),
                    _claimable(),
                    _not_parked(),
                    GenerationRow.id.not_in(list(exclude)),
                )
                .order_by(GenerationRow.next_attempt_at, GenerationRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        return await _take(db, ids, owner, lease_seconds)


async def claim(
    sm: Maker, owner: str, lease_seconds: float, exclude: Collection[int]
) -> int | None:
    """`claim_many` of one job: its id, or None."""
    ids = await claim_many(sm, owner, lease_seconds, exclude, 1)
    return ids[0] if ids else None


def _admissible_statement() -> Any:
    """The SELECT of `admit` (up to `free` ids), built once (issue 13)."""
    older, ahead = aliased(GenerationRow), aliased(GenerationRow)
    return (
        select(GenerationRow.id)
        .where(
            GenerationRow.state == S.QUEUED,
            GenerationRow.waiting.in_(PARKED),
            GenerationRow.next_attempt_at <= db_now(),
            _claimable(),
            ~exists().where(  # an older version of its thread runs first
                older.session_id == GenerationRow.session_id,
                older.state.in_(S.ACTIVE),
                older.id < GenerationRow.id,
            ),
            ~exists().where(  # an older job not parked yet (or parking) goes first
                ahead.state == S.QUEUED,
                ahead.cancel_requested.is_(False),
                ahead.next_attempt_at <= db_now(),
                ahead.id < GenerationRow.id,
                or_(
                    ahead.waiting.is_(None),
                    and_(  # parking: its reason is stored, its lease not let go yet
                        ahead.waiting.in_(FOR_PROVIDER),
                        ahead.lease_owner.is_not(None),
                        ahead.lease_expires_at >= db_now(),
                    ),
                ),
            ),
        )
        .order_by(GenerationRow.id)
        .limit(bindparam("free", type_=Integer))
        .with_for_update(skip_locked=True)
    )


_RUNNING = select(func.count()).where(GenerationRow.state == S.SUBMITTED)
_ADMISSIBLE = _admissible_statement()
_LOAD = select(GenerationRow).where(GenerationRow.id == bindparam("job_id"))


async def admit(
    sm: Maker,
    owner: str,
    lease_seconds: float,
    concurrency: int,
    taken: int,
) -> list[int]:
    """Start parked jobs in queue order while the provider has free slots: up to
    `concurrency` minus the tasks running (state submitted; one engine runs every job with
    its one provider, whatever provider name the job was queued with) minus `taken` (slots this
    worker holds for submits not stored yet), the oldest parked jobs whose thread has no
    older active version, not in backoff, and no older job still on its way to being parked
    (no reason stored yet, or stored with its lease still held), are leased to `owner` and
    un-parked (`waiting` cleared); their ids, oldest first. One COUNT, one SELECT (FOR
    UPDATE SKIP LOCKED on PostgreSQL) and one UPDATE, whatever the queue's length."""
    async with sm.begin() as db:
        running = await db.scalar(_RUNNING)
        free = concurrency - int(running or 0) - taken
        if free <= 0:
            return []
        ids = list(await db.scalars(_ADMISSIBLE, {"free": free}))
        return await _take(db, ids, owner, lease_seconds, waiting=None)


async def load(sm: Maker, job_id: int) -> Job | None:
    """The job as stored now, or None when it was deleted."""
    async with sm() as db:
        row = await db.scalar(_LOAD, {"job_id": job_id})
    if row is None:
        return None
    return from_row(Job, row, ask=ask_of(row))


async def cancel_asked(sm: Maker, job_id: int) -> bool:
    """Whether the job's cancellation was asked for (as stored now; False when deleted)."""
    async with sm() as db:
        found = await db.scalar(
            select(GenerationRow.cancel_requested).where(GenerationRow.id == job_id)
        )
    return bool(found)


@functools.lru_cache(maxsize=64)
def _guarded_update(columns: tuple[str, ...]) -> Update:
    """UPDATE of `columns` (bound as `v_<column>`) on one job whose lease `owner` holds."""
    return (
        update(GenerationRow)
        .where(
            GenerationRow.id == bindparam("w_job_id"),
            GenerationRow.lease_owner == bindparam("w_owner"),
        )
        .values({column: bindparam(f"v_{column}") for column in columns})
        .execution_options(**effects.NO_SYNC)
    )


def _is_sql(value: Any) -> bool:
    """Whether `value` is an SQL expression (db_now(), a column…), not a plain value."""
    return isinstance(value, ClauseElement) or hasattr(value, "__clause_element__")


async def _guarded(db: AsyncSession, job_id: int, owner: str, **values: Any) -> None:
    """Write `values` (plain values or SQL expressions) on the job if `owner` holds its
    lease; with none, only check the lease. Raises LeaseLost."""
    values = values or {"lease_owner": owner}  # nothing to change: just check the lease
    plain = {k: v for k, v in values.items() if not _is_sql(v)}
    statement = _guarded_update(tuple(sorted(plain)))
    if len(plain) < len(values):  # SQL expressions (db_now() …) go into the statement
        statement = statement.values({k: v for k, v in values.items() if k not in plain})
    params = {f"v_{k}": v for k, v in plain.items()}
    result = await db.execute(statement, {"w_job_id": job_id, "w_owner": owner, **params})
    if result.rowcount != 1:
        raise LeaseLost(job_id)


async def write(sm: Maker, job_id: int, owner: str, **values: Any) -> None:
    """Set plain column values (status_ts, polls, progress, waiting, …) on the job if `owner`
    still holds its lease; with no values only checks the lease. Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(db, job_id, owner, **values)


async def renew_lease(sm: Maker, job_id: int, owner: str, lease_seconds: float) -> None:
    """Extend the lease to `lease_seconds` from now (database clock). Raises LeaseLost."""
    await write(sm, job_id, owner, lease_expires_at=db_now() + lease_seconds)


async def renew_leases(
    sm: Maker, owner: str, lease_seconds: float, job_ids: Collection[int]
) -> set[int]:
    """Extend every lease `owner` holds to `lease_seconds` from now (database clock) in ONE
    UPDATE; the ids among `job_ids` it still holds (a SELECT only when some were lost)."""
    async with sm.begin() as db:
        result = await db.execute(
            update(GenerationRow)
            .where(GenerationRow.lease_owner == owner)
            .values(lease_expires_at=db_now() + lease_seconds)
        )
        if result.rowcount == len(job_ids):
            return set(job_ids)
        held = await db.scalars(select(GenerationRow.id).where(GenerationRow.lease_owner == owner))
        return set(held) & set(job_ids)


async def release(sm: Maker, job_id: int, owner: str, delay: float) -> None:
    """Give the job back to the queue, due in `delay` seconds. Raises LeaseLost."""
    await write(
        sm,
        job_id,
        owner,
        lease_owner=None,
        lease_expires_at=None,
        next_attempt_at=db_now() + delay,
    )


async def cancel_requested(sm: Maker, owner: str) -> list[int]:
    """The active jobs `owner` holds whose cancellation was asked for."""
    async with sm() as db:
        return list(
            await db.scalars(
                select(GenerationRow.id).where(
                    GenerationRow.lease_owner == owner,
                    GenerationRow.cancel_requested.is_(True),
                    GenerationRow.state.in_(S.ACTIVE),
                )
            )
        )


async def release_all(sm: Maker, owner: str) -> None:
    """Drop every lease `owner` holds (at shutdown), so another worker resumes at once."""
    async with sm.begin() as db:
        await db.execute(
            update(GenerationRow)
            .where(GenerationRow.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


async def attempt(sm: Maker, job_id: int, owner: str, effect: Effect) -> None:
    """Record, before making it, that `effect` is about to be tried. Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(db, job_id, owner)
        await effects.attempt(db, job_id, effect)


async def claim_session_effect(
    sm: Maker, job_id: int, owner: str, session_id: int, effect: Effect
) -> bool:
    """Record the intent of an effect made once per session, not per version (MENTION):
    True when this job records it now, False when a version of the session recorded it
    before. The session row is locked first (a no-op UPDATE), so two versions finishing at
    once decide in turn. Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(db, job_id, owner)
        await db.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(owner_user_id=SessionRow.owner_user_id)
        )
        taken = await db.scalar(
            select(EffectRow.id)
            .join(GenerationRow, EffectRow.generation_id == GenerationRow.id)
            .where(GenerationRow.session_id == session_id, EffectRow.effect == effect)
            .limit(1)
        )
        if taken is not None:
            return False
        await effects.attempt(db, job_id, effect)
        return True


async def effect_done(sm: Maker, job_id: int, owner: str, effect: Effect, ref: str) -> None:
    """Record the platform's answer `ref` (a message ts) for an effect. Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(db, job_id, owner)
        await effects.done(db, job_id, effect, ref)


async def reserve_files(sm: Maker, job_id: int, owner: str, file_ids: Mapping[int, str]) -> None:
    """Keep the file ids reserved for the job's upload ({index: file_id}) before they are
    shared. Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(db, job_id, owner)
        await effects.reserve(db, job_id, Effect.UPLOAD, file_ids)


async def set_thread(
    sm: Maker,
    job_id: int,
    owner: str,
    session_id: int,
    thread_ts: str,
    then: Effect | None = None,
) -> None:
    """Record the session's root message `thread_ts` (checking the job's lease first, in the
    same transaction) and mark the ROOT effect done; with `then`, also record (as `attempt`
    does) that effect as about to be tried, in the same commit. Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(db, job_id, owner)
        await db.execute(
            update(SessionRow).where(SessionRow.id == session_id).values(thread_ts=thread_ts)
        )
        await effects.done(db, job_id, Effect.ROOT, thread_ts)
        if then is not None:
            await effects.attempt(db, job_id, then)


async def set_status_ts(sm: Maker, job_id: int, owner: str, status_ts: str | None) -> None:
    """Record the status message's ts and mark the STATUS effect done. Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(db, job_id, owner, status_ts=status_ts)
        await effects.done(db, job_id, Effect.STATUS, status_ts)


async def set_file_ids(sm: Maker, job_id: int, owner: str, file_ids: Mapping[int, str]) -> None:
    """Record the uploaded file id of each image ({index: file_id}) and mark the UPLOAD
    effect done. Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(db, job_id, owner)
        await effects.done(db, job_id, Effect.UPLOAD, None)
        for index, file_id in file_ids.items():
            await db.execute(
                update(ImageRow)
                .where(ImageRow.generation_id == job_id, ImageRow.index == index)
                .values(slack_file_id=file_id)
            )


async def mark_submitted(
    sm: Maker, job_id: int, owner: str, task_id: str, model: str | None
) -> None:
    """The provider accepted the task `task_id`: state submitted, polls and progress reset,
    no longer waiting. Raises LeaseLost."""
    await write(
        sm,
        job_id,
        owner,
        provider_task_id=task_id,
        state=S.SUBMITTED,
        submitted_at=db_now(),
        model=model,
        polls=0,
        progress=0,
        waiting=None,
    )


async def record_retry(
    sm: Maker, job_id: int, owner: str, attempts: int, kind: str, detail: str | None
) -> None:
    """Count a failed try: `attempts` so far, the error `kind` and the provider's `detail`
    message. Raises LeaseLost."""
    await write(sm, job_id, owner, attempts=attempts, error=detail, error_kind=kind)


async def finish(
    sm: Maker,
    job_id: int,
    owner: str,
    state: str,
    *,
    failure: Failure | None = None,
    result_ts: str | None = None,
) -> None:
    """Move the job to a terminal `state` (posted, failed, cancelled) and drop its lease;
    a failed job records its `failure` (also as error / error_kind); a posted one its
    `result_ts` (the RESULT effect done). Raises LeaseLost."""
    values: dict[str, Any] = {"state": state, "finished_at": db_now()}
    if failure is not None:
        values.update(error=failure.detail, error_kind=failure.kind, failure=failure.to_json())
        if failure.attempts:
            values["attempts"] = failure.attempts
    if state == S.POSTED:
        values.update(result_ts=result_ts, error=None)
    async with sm.begin() as db:
        await _guarded(db, job_id, owner, lease_owner=None, lease_expires_at=None, **values)
        if state == S.POSTED:
            await effects.done(db, job_id, Effect.RESULT, result_ts)


async def save_results(
    sm: Maker,
    job_id: int,
    owner: str,
    blobs: Sequence[StoredBlob],
    *,
    note: str | None,
    usage: dict[str, Any] | None,
    cost_usd: float | None,
) -> None:
    """The task completed: record its stored images (in order) and the job's note, usage,
    cost (USD) and latency (seconds since it was queued). Raises LeaseLost."""
    async with sm.begin() as db:
        await _guarded(
            db,
            job_id,
            owner,
            state=S.COMPLETED,
            progress=100,
            completed_at=db_now(),
            latency_seconds=db_now() - GenerationRow.created_at,
            note=note,
            usage=usage,
            cost_usd=cost_usd,
        )
        for index, blob in enumerate(blobs):
            db.add(
                ImageRow(
                    generation_id=job_id,
                    index=index,
                    sha256=blob.sha256,
                    path=str(blob.path),
                    width=blob.width,
                    height=blob.height,
                    mime=blob.mime,
                    bytes=blob.bytes,
                )
            )


async def seconds_since_submit(sm: Maker, job_id: int) -> float | None:
    """Seconds since the job was submitted (database clock), None if it was not."""
    async with sm() as db:
        return await db.scalar(
            select(db_now() - GenerationRow.submitted_at).where(GenerationRow.id == job_id)
        )


# The lowest version of an older, still active generation of a session (`version_ahead`).
_VERSION_AHEAD = select(func.min(GenerationRow.version)).where(
    GenerationRow.session_id == bindparam("session_id"),
    GenerationRow.state.in_(S.ACTIVE),
    GenerationRow.id < bindparam("job_id"),
)


async def version_ahead(db: AsyncSession, session_id: int, job_id: int) -> int | None:
    """The lowest version of an older, still active generation of the same session, or None."""
    return await db.scalar(_VERSION_AHEAD, {"session_id": session_id, "job_id": job_id})


def _in_order_statement() -> Any:
    """One SELECT of three numbers for `order_and_load`, built once (issue 13)."""
    job_id, provider = bindparam("job_id"), bindparam("provider")
    running = select(func.count()).where(
        GenerationRow.provider == provider, GenerationRow.state == S.SUBMITTED
    )
    older_first = select(func.count()).where(
        GenerationRow.provider == provider,
        GenerationRow.state == S.QUEUED,
        GenerationRow.id < job_id,
        GenerationRow.cancel_requested.is_(False),
        or_(
            GenerationRow.lease_owner.is_(None),
            GenerationRow.lease_expires_at <= db_now(),
            GenerationRow.lease_owner == bindparam("owner"),
        ),
        or_(
            GenerationRow.waiting.in_(FOR_PROVIDER),
            and_(GenerationRow.waiting.is_(None), GenerationRow.next_attempt_at <= db_now()),
        ),
    )
    return select(
        _VERSION_AHEAD.scalar_subquery(), running.scalar_subquery(), older_first.scalar_subquery()
    )


_IN_ORDER = _in_order_statement()
_AHEAD = select(func.count()).where(  # active jobs older than one (`waiting_of`)
    GenerationRow.state.in_(S.ACTIVE), GenerationRow.id < bindparam("job_id")
)


async def order_and_load(
    sm: Maker, session_id: int, provider: str, job_id: int, owner: str | None = None
) -> tuple[int | None, int, int]:
    """What decides whether `job_id` may go to `provider` now, read in one statement:
    (`version_ahead` in its session, tasks running at `provider`, older queued jobs of that
    provider that should start before it). Older jobs in backoff or waiting for their own
    thread do not count among those; jobs waiting for a slot or the breaker do; jobs in a
    step right now (a live lease: at a synchronous provider, or about to ask) in another
    process than `owner` do not, so processes do not hold each other up; `owner`'s own
    claimed jobs do (they keep their places in the queue)."""
    params = {"session_id": session_id, "provider": provider, "job_id": job_id, "owner": owner}
    async with sm() as db:
        ahead, running, older_first = (await db.execute(_IN_ORDER, params)).one()
    return ahead, int(running or 0), int(older_first or 0)


async def waiting_of(db: AsyncSession, row: GenerationRow) -> tuple[WaitReason | None, int | None]:
    """Why a generation waits and the reason's number (see WaitReason), for its view.

    A queued job with no stored reason that has older active jobs waits in the QUEUE
    (number: how many are ahead)."""
    try:
        reason = WaitReason(row.waiting) if row.waiting else None
    except ValueError:  # a row written before reasons were codes
        reason = None
    if row.state != S.QUEUED:
        return reason, None
    if reason is WaitReason.THREAD:
        return reason, await version_ahead(db, row.session_id, row.id)
    if reason is not None:
        return reason, None
    ahead = await db.scalar(_AHEAD, {"job_id": row.id})
    return (WaitReason.QUEUE, int(ahead)) if ahead else (None, None)


async def next_due_in(sm: Maker, exclude: Collection[int]) -> float | None:
    """Seconds (database clock) until the next job not in `exclude` may be claimed: the
    earliest `next_attempt_at` of an active job without a live lease, or the earliest
    `lease_expires_at` of an active job with one (a dead worker's job comes back then).
    0 or less means one is claimable now; None means no active job exists."""
    wake_at = case(
        (_claimable(), GenerationRow.next_attempt_at),
        else_=GenerationRow.lease_expires_at,
    )
    async with sm() as db:
        return await db.scalar(
            select(func.min(wake_at) - db_now()).where(
                GenerationRow.state.in_(S.ACTIVE),
                _not_parked(),
                GenerationRow.id.not_in(list(exclude)),
            )
        )
