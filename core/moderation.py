"""Content policy before anything is spent: a blocklist or OpenAI's moderation endpoint.

- `Blocklist`: words and regular expressions (MODERATION_BLOCKLIST, MODERATION_BLOCKLIST_FILE)
  matched case-insensitively as whole words.
- `OpenAIModeration`: `POST /v1/moderations` with `omni-moderation-latest` (OpenAI's
  "Moderation" guide and API reference: `{"model", "input"}` where input is a string or a
  list of `{"type": "text", "text"}` / `{"type": "image_url", "image_url": {"url"}}` parts;
  the answer is `{"id", "model", "results": [{"flagged", "categories": {name: bool},
  "category_scores": {name: float}, "category_applied_input_types": {…}}]}`). Retried with
  backoff (honouring Retry-After) within a time budget that keeps Slack's 3-second ack,
  behind a circuit breaker like the image calls' (core.breaker, PROVIDER_BREAKER_*): after
  that many consecutive retryable failures OpenAI is not asked for the cool-off (one probe
  after it), so every check meanwhile answers at once as "unavailable" and
  MODERATION_FAIL decides.
- `Moderator`: the policy the settings describe (mode, fail open/closed, images, results).
- `check_request` / `check_reply`: the one-line checks `core.sessions.start` and
  `core.refinement.take_reply` make; a refusal raises `ModerationRefused` (the audit row is
  written first, in its own transaction) and nothing is queued.

Only category names and matched blocklist entries leave this module, never scores.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from core.breaker import CircuitBreaker
from core.config import SettingsError
from core.db import policy as policy_db
from core.db import refinement as threads
from core.db.refinement import SessionRef
from core.prompts import compose_prompt
from core.providers.base import ErrorKind, ProviderError
from core.providers.http import ProviderHTTP, parse_retry_after, shorten
from core.providers.results import sniff_mime

log = logging.getLogger(__name__)

MODERATION_MODEL = "omni-moderation-latest"
BUDGET_SECONDS = 2.4  # every try and wait of one check, so a slash command still acks in 3 s
ATTEMPTS = 4
BLOCKLIST = "blocklist"  # the category a blocklist match is reported under


class ModerationRefused(Exception):
    """A request was refused by the content policy; nothing was queued.

    `categories`: the policy categories that flagged it ("violence", "blocklist", …);
    `terms`: the words the blocklist matched, as the person typed them;
    `unavailable`: True when moderation could not answer and MODERATION_FAIL=closed;
    `retry_after`: then, seconds until it will be asked again (the breaker's cool-off), or
    None when unknown.
    """

    def __init__(
        self,
        categories: Sequence[str] = (),
        terms: Sequence[str] = (),
        *,
        unavailable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__("moderation unavailable" if unavailable else ", ".join(categories))
        self.categories = tuple(categories)
        self.terms = tuple(terms)
        self.unavailable = unavailable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Verdict:
    """A moderation answer: flagged or not, the categories and blocklist terms that hit."""

    flagged: bool
    categories: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()


CLEAN = Verdict(False)


class Blocklist:
    """Words and regular expressions, matched case-insensitively as whole words.

    An entry is a regular expression (a plain word is one); it matches only where it is not
    part of a longer word ("ham" does not match "hamster"). Raises ValueError for an entry
    that is not a regular expression.
    """

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries = tuple(e.strip() for e in entries if e.strip())
        self._patterns = [
            (entry, re.compile(rf"(?<!\w)(?:{entry})(?!\w)", re.IGNORECASE))
            for entry in self.entries
        ]

    @classmethod
    def from_settings(cls, inline: str, file: Path | None) -> Blocklist:
        """Entries from MODERATION_BLOCKLIST (comma-separated) and MODERATION_BLOCKLIST_FILE
        (one per line; blank lines and lines starting with # skipped). Raises OSError when
        the file cannot be read, ValueError for a bad regular expression."""
        entries = inline.split(",")
        if file is not None:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
            entries += [line for line in lines if not line.strip().startswith("#")]
        try:
            return cls(entries)
        except re.error as err:
            where = "MODERATION_BLOCKLIST_FILE" if file is not None else "MODERATION_BLOCKLIST"
            raise ValueError(f"{where}: an entry is not a regular expression ({err})") from None

    def check(self, text: str) -> Verdict:
        """What of `text` the entries match (the words as typed), as a Verdict (category
        "blocklist")."""
        hits: list[str] = []
        for _entry, pattern in self._patterns:
            found = pattern.search(text)
            if found and found[0] not in hits:
                hits.append(found[0])
        return Verdict(True, (BLOCKLIST,), tuple(hits)) if hits else CLEAN


class OpenAIModeration:
    """OpenAI's moderation endpoint over the shared provider HTTP set-up.

    Args:
        api_key, base_url: OPENAI_API_KEY and OPENAI_BASE_URL ("https://api.openai.com/v1").
        budget_seconds: longest time one `check` may take, tries and waits included.
        attempts: most tries of one call. Raises ProviderError (kinds as for image calls)
            once they are spent or for an error no retry helps.
        breaker: the circuit breaker every try reports to (default: 5 failures, 60 s);
            while it is open `check` raises ProviderError(UNAVAILABLE) without a call.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        budget_seconds: float = BUDGET_SECONDS,
        attempts: int = ATTEMPTS,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.budget_seconds = budget_seconds
        self.attempts = attempts
        self.breaker = breaker or CircuitBreaker(5, 60.0)
        self.http = ProviderHTTP("OpenAI moderation", api_key, base_url, budget_seconds)

    async def check(self, text: str, images: Sequence[bytes] = ()) -> Verdict:
        """Moderate `text` and each image (one call per image, with the text in the first).
        A result is flagged when any call says so; categories are the flagged ones."""
        inputs: list[list[dict[str, Any]]] = [[{"type": "text", "text": text}]] if text else []
        for data in images:
            url = f"data:{sniff_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"
            inputs.append([{"type": "image_url", "image_url": {"url": url}}])
        categories: list[str] = []
        started = time.monotonic()
        for parts in inputs:
            left = self.budget_seconds - (time.monotonic() - started)
            for name in await self._retried(parts, max(0.1, left)):
                if name not in categories:
                    categories.append(name)
        return Verdict(bool(categories), tuple(categories))

    async def _retried(self, parts: list[dict[str, Any]], budget: float) -> list[str]:
        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            hint = error.retry_after if isinstance(error, ProviderError) else None
            return min(hint if hint is not None else 0.2 * 2**state.attempt_number, 1.0)

        def retryable(error: BaseException) -> bool:  # not once the breaker opened
            kind = error.kind if isinstance(error, ProviderError) else None
            return kind is not None and kind.retryable and self.breaker.state == "closed"

        retrying = AsyncRetrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(budget),
            wait=wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._guarded(parts)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _guarded(self, parts: list[dict[str, Any]]) -> list[str]:
        """One try through the circuit breaker: refused at once while it is open, and its
        outcome recorded (core.breaker.CircuitBreaker.record_result)."""
        if not self.breaker.allow():
            wait = self.breaker.retry_in()
            message = f"OpenAI moderation keeps failing; not asked again for {wait:.0f} s"
            raise ProviderError(ErrorKind.UNAVAILABLE, message, retry_after=wait)
        try:
            flagged = await self._call(parts)
        except BaseException as err:
            self.breaker.record_result(err)
            raise
        self.breaker.record_result(None)
        return flagged

    async def _call(self, parts: list[dict[str, Any]]) -> list[str]:
        """One `POST moderations`; the flagged category names."""
        body = {"model": MODERATION_MODEL, "input": parts}
        response = await self.http.request("POST", "moderations", json=body)
        if response.status_code != 200:
            raise self._error(response)
        try:
            results = response.json()["results"]
            flagged = [
                name
                for result in results
                if result.get("flagged")
                for name, hit in result.get("categories", {}).items()
                if hit
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self.http.unreadable(response, "POST /v1/moderations") from None
        if any(r.get("flagged") for r in results) and not flagged:
            flagged = ["unspecified"]
        return flagged

    def _error(self, response: Any) -> ProviderError:
        """429 → RATE_LIMITED (Retry-After honoured); 401/403 → AUTHENTICATION; 408/409/5xx
        and non-JSON → UNAVAILABLE; other 4xx → INVALID_REQUEST."""
        body = self.http.parse_error(response)
        status, detail = body.status, body.describe()
        hint = parse_retry_after(response.headers)
        if status == 429:
            kind = ErrorKind.RATE_LIMITED
        elif status in (401, 403):
            kind = ErrorKind.AUTHENTICATION
        elif status in (408, 409) or status >= 500 or not body.is_json:
            kind = ErrorKind.UNAVAILABLE
        else:
            kind = ErrorKind.INVALID_REQUEST
        message = f"OpenAI moderation answered HTTP {status}: {shorten(body.message or '?')}"
        return self.http.error(kind, message, detail=detail, retry_after=hint)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()


@dataclass
class Moderator:
    """The content policy of one deployment (MODERATION… settings).

    `blocklist` always applies (it may be empty); `openai` is set for MODERATION=openai.
    `fail_open`: when moderation cannot answer, let the request through (else refuse it).
    `images`: moderate reference images too; `results`: moderate generated images.
    """

    blocklist: Blocklist
    openai: OpenAIModeration | None = None
    fail_open: bool = False
    images: bool = False
    results: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> Moderator | None:
        """The policy `settings` (core.config.Settings) describe; None for MODERATION=off.
        Raises SettingsError (one line naming the variable) for an unreadable blocklist
        file, a bad expression in it, or MODERATION=openai without OPENAI_API_KEY."""
        if settings.moderation == "off":
            return None
        try:
            blocklist = Blocklist.from_settings(
                settings.moderation_blocklist, settings.moderation_blocklist_file
            )
        except OSError as err:
            raise SettingsError(f"MODERATION_BLOCKLIST_FILE: cannot read it ({err})") from None
        except ValueError as err:
            raise SettingsError(str(err)) from None
        openai = None
        if settings.moderation == "openai":
            settings.require("openai_api_key")
            key = settings.openai_api_key.get_secret_value()
            breaker = CircuitBreaker(
                settings.provider_breaker_failures, settings.provider_breaker_cooloff_seconds
            )
            openai = OpenAIModeration(key, settings.openai_base_url, breaker=breaker)
        return cls(
            blocklist,
            openai,
            fail_open=settings.moderation_fail == "open",
            images=settings.moderation_images,
            results=settings.moderation_results,
        )

    async def review(self, text: str, images: Sequence[bytes] = ()) -> Verdict:
        """The verdict on a request's full text (and its images when MODERATION_IMAGES=on).

        Raises ModerationRefused(unavailable=True) when OpenAI cannot answer and the policy
        fails closed; failing open lets it through (logged as a warning)."""
        verdict = self.blocklist.check(text)
        if verdict.flagged or self.openai is None:
            return verdict
        try:
            return await self.openai.check(text, images if self.images else ())
        except ProviderError as err:
            log.warning("moderation unavailable (%s): %s", err.kind, err.detail or err.message)
            if self.fail_open:
                return CLEAN
            raise ModerationRefused(unavailable=True, retry_after=err.retry_after) from None

    async def review_results(self, images: Sequence[bytes]) -> Verdict:
        """The verdict on generated images (MODERATION_RESULTS=on with MODERATION=openai).
        Raises ProviderError when moderation cannot answer and the policy fails closed."""
        if not self.results or self.openai is None:
            return CLEAN
        try:
            return await self.openai.check("", images)
        except ProviderError:
            if self.fail_open:
                return CLEAN
            raise

    async def aclose(self) -> None:
        """Close the moderation client."""
        if self.openai is not None:
            await self.openai.aclose()


async def check_request(
    moderator: Moderator | None,
    sm: async_sessionmaker[AsyncSession],
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    text: str,
    images: Sequence[bytes] = (),
) -> None:
    """Refuse a request the policy flags: write the audit row (categories and term count,
    not the text), then raise ModerationRefused. Does nothing when `moderator` is None."""
    if moderator is None:
        return
    log.debug("moderating for %s: %r", user_id, text)
    try:
        verdict = await moderator.review(text, images)
    except ModerationRefused as refused:
        verdict, error = Verdict(True, ("unavailable",)), refused
    else:
        error = ModerationRefused(verdict.categories, verdict.terms)
    if not verdict.flagged:
        return
    async with sm.begin() as db:
        await policy_db.audit(
            db,
            "moderation_refused",
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            detail={"categories": list(verdict.categories), "terms": len(verdict.terms)},
        )
    raise error


async def check_reply(
    moderator: Moderator | None,
    sm: async_sessionmaker[AsyncSession],
    session: SessionRef,
    *,
    user_id: str,
    instruction: str,
    images: Sequence[bytes] = (),
) -> None:
    """`check_request` on the full prompt a reply would send: the session's prompt, the
    refinement chain of the current base image and `instruction`."""
    if moderator is None:
        return
    async with sm() as db:
        base = await threads.base_image(db, session.session_id)
        first = await threads.first_version(db, session.session_id)
        chain = [*await threads.instruction_chain(db, base.generation_id if base else None)]
    original = first.prompt if first else instruction
    text = compose_prompt(original, [*chain, instruction], has_base=base is not None)
    await check_request(
        moderator,
        sm,
        team_id=session.team_id,
        channel_id=session.channel_id,
        user_id=user_id,
        text=text if instruction else "",
        images=images,
    )
