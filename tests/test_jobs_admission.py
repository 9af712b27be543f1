"""Unit tests of admission (order in a thread, capacity per provider, the breaker) and of the
waiting reasons it stores, on a real SQLite database with the recording publisher."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import sessions
from core.db import views
from core.jobs import outcomes, steps
from core.jobs.admission import Admission, Wait
from core.models import GenerationState, db_now
from core.ports import WaitReason
from core.providers.base import ErrorKind, ProviderError
from tests.fakes.publisher import RecordingPublisher
from tests.harness import ALICE, BOB
from tests.jobs_support import CHANNEL, Maker, job, make_engine, queue, row, set_row

S = GenerationState
HERE = sessions.Conversation("T0TEAM", CHANNEL)


def _admission(sm: Maker, concurrency: int = 2, breaker_failures: int = 5) -> Admission:
    return Admission(sm, concurrency, breaker_failures, breaker_cooloff_seconds=30)


async def test_versions_of_one_thread_run_in_order(sm: Maker) -> None:
    v1 = await queue(sm)
    v2 = await sessions.regenerate(sm, v1, ALICE, HERE)
    admission = _admission(sm)
    assert await admission.check(await job(sm, v2)) == Wait(WaitReason.THREAD, 1, 0.5)
    assert await admission.check(await job(sm, v1)) is None
    await set_row(sm, v1, state=S.POSTED)
    assert await admission.check(await job(sm, v2)) is None


async def test_a_full_provider_holds_new_jobs_and_older_jobs_start_first(sm: Maker) -> None:
    running, older, newer = await queue(sm), await queue(sm), await queue(sm)
    await set_row(sm, running, state=S.SUBMITTED)
    admission = _admission(sm, concurrency=1)
    assert await admission.check(await job(sm, older)) == Wait(WaitReason.SLOT, None, 1.0)
    await set_row(sm, running, state=S.POSTED)
    assert await admission.check(await job(sm, older)) is None
    # The older job is due, so the newer one waits behind it…
    assert (await admission.check(await job(sm, newer))) == Wait(WaitReason.SLOT, None, 1.0)
    # …unless a slot is left after it (a burst starts at once)…
    assert await _admission(sm, concurrency=2).check(await job(sm, newer)) is None
    await set_row(sm, running, state=S.SUBMITTED)
    assert await _admission(sm, concurrency=2).check(await job(sm, newer)) is not None
    await set_row(sm, running, state=S.POSTED)
    # …or the older one is in backoff.
    await set_row(sm, older, next_attempt_at=db_now() + 60)
    assert await admission.check(await job(sm, newer)) is None


async def test_an_older_job_in_a_step_elsewhere_does_not_hold_newer_ones(sm: Maker) -> None:
    older, newer = await queue(sm), await queue(sm)
    await set_row(sm, older, lease_owner="host:1:other", lease_expires_at=db_now() + 60)
    admission = _admission(sm, concurrency=1)
    assert await admission.check(await job(sm, newer)) is None  # another process runs it
    await set_row(sm, older, lease_expires_at=db_now() - 1)  # that process died: it waits
    assert await admission.check(await job(sm, newer)) == Wait(WaitReason.SLOT, None, 1.0)


async def test_a_slot_taken_in_this_process_counts_before_the_submit_is_stored(sm: Maker) -> None:
    first, second = await queue(sm), await queue(sm)
    await set_row(sm, first, next_attempt_at=db_now() + 60)  # not holding the line
    admission = _admission(sm, concurrency=1)
    async with admission.slot(await job(sm, first)) as wait:
        assert wait is None and admission.submitting == 1
        assert await admission.check(await job(sm, second)) == Wait(WaitReason.SLOT, None, 1.0)
    assert admission.submitting == 0


async def test_an_open_breaker_holds_new_jobs(sm: Maker) -> None:
    job_id = await queue(sm)
    admission = _admission(sm, breaker_failures=1)

    async def unavailable() -> None:
        raise ProviderError(ErrorKind.UNAVAILABLE, "The provider is down.")

    with pytest.raises(ProviderError):
        await admission.call(unavailable())
    wait = await admission.check(await job(sm, job_id))
    assert wait is not None and wait.reason is WaitReason.BREAKER and wait.retry_in >= 1.0


async def test_a_waiting_job_stores_its_reason_and_shows_it_once(sm: Maker, tmp_path: Path) -> None:
    running, waiting = await queue(sm), await queue(sm)
    await set_row(sm, running, state=S.SUBMITTED)
    publisher = RecordingPublisher()
    engine = make_engine(sm, tmp_path, publisher, concurrency=1)
    await set_row(sm, waiting, lease_owner=engine.owner)
    for _ in range(3):
        delay = await steps.run_step(engine.ctx, await job(sm, waiting))
        assert delay == outcomes.PARKED  # not looked at again until admitted
    stored = await row(sm, waiting)
    assert stored is not None and stored.state == S.QUEUED and stored.waiting == "slot"
    statuses = publisher.of("show_status")
    # The first status (queued, one generation ahead), then the reason: once, not per step.
    assert [(c.view.waiting_reason, c.view.waiting_number) for c in statuses] == [
        (WaitReason.QUEUE, 1),
        (WaitReason.SLOT, None),
    ]
    view = await views.get_view(sm, waiting)
    assert (view.waiting_reason, view.waiting_number) == (WaitReason.SLOT, None)


async def test_the_view_names_the_version_a_thread_waits_for(sm: Maker, tmp_path: Path) -> None:
    v1 = await queue(sm)
    await sessions.regenerate(sm, v1, ALICE, HERE)  # v2
    v3 = await sessions.regenerate(sm, v1, BOB, HERE)  # another person: no double click
    publisher = RecordingPublisher()
    engine = make_engine(sm, tmp_path, publisher)
    await set_row(sm, v1, lease_owner=engine.owner)
    await steps.run_step(engine.ctx, await job(sm, v1))  # opens the thread
    await set_row(sm, v3, lease_owner=engine.owner)
    assert await steps.run_step(engine.ctx, await job(sm, v3)) == outcomes.PARKED
    view = await views.get_view(sm, v3)
    assert (view.waiting_reason, view.waiting_number) == (WaitReason.THREAD, 1)
    await set_row(sm, v1, state=S.POSTED)
    view = await views.get_view(sm, v3)
    assert (view.waiting_reason, view.waiting_number) == (WaitReason.THREAD, 2)


async def test_admit_passes_over_no_older_job_on_its_way_to_being_parked(sm: Maker) -> None:
    """`admit` starts parked jobs in queue order: an older job whose reason is stored but
    whose lease is not let go yet (it is parking: its status message is being edited) keeps
    its place ahead of a newer job that parked sooner."""
    parking, parked = await queue(sm), await queue(sm)
    slot = WaitReason.SLOT.value
    await set_row(sm, parked, waiting=slot)
    await set_row(sm, parking, waiting=slot, lease_owner="me", lease_expires_at=db_now() + 60)
    admission = _admission(sm, concurrency=2)
    assert await admission.admit("me", 60) == []
    await set_row(sm, parking, lease_owner=None, lease_expires_at=None)  # parked now
    assert await admission.admit("me", 60) == [parking, parked]
