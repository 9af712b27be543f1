"""The job engine: runs generation jobs durably inside the server process.

A generation row is its own job. States and transitions:

    queued ──submit──▶ submitted ──poll…──▶ completed ──upload+post──▶ posted
       │                   │
       └───────────────────┴──────────────▶ failed | cancelled

A worker loop (`loop`) claims due jobs (`next_attempt_at <= now`, no live lease) by
writing a lease (owner, expiry from the database clock) with a conditional
UPDATE, runs steps (`steps`) while it holds the lease, renews the lease while a step
runs, and writes every transition with `WHERE lease_owner = me` (`core.db.jobs`), so a
process that lost its lease cannot overwrite the new owner's work. What has been done
is in the row: the thread ts, the status message ts, the provider task id
(written right after submit returns), the stored images, the uploaded file
ids, the result message ts. A restart therefore resumes: a submitted task is
polled, never submitted again; a finished result is posted once.

`admission` decides when a queued job may start (order per thread and per provider,
capacity, circuit breaker); `request` builds the provider request from the stored rows;
`outcomes` writes retries, failures and cancellations. The engine says nothing in words:
failures and waiting reasons are codes (core.ports.FailureReason, WaitReason) that the
Publisher words.
"""

from core.db.jobs import LeaseLost
from core.jobs.context import EngineConfig
from core.jobs.loop import JobEngine

__all__ = ["EngineConfig", "JobEngine", "LeaseLost"]
