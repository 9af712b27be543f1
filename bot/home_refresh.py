"""Republishing App Home tabs when their items change (issue 10).

When a version starts waiting for the channel's reviewers, or an image is approved, gets a
change request or reaches the gallery, `SlackPublisher.review_items_changed` hands the
generation to a `HomeRefresher`. In the background it works out whose Home lists change
(the channel's reviewers, user groups resolved with usergroups.users.list, and the
session's owner and requester), keeps those who have opened the Home tab at least once
(`core.home.seen`: a Home never opened is not published unasked), and republishes
each one's Home (`bot.home.publish_for`, views.publish).

Coalesced per person: at most one publish per person per `window` seconds; changes within
it are folded into one publish made at the window's end, which reads the state then (the
latest wins). views.publish is Tier 4 (about 100 a minute per workspace,
https://docs.slack.dev/reference/methods/views.publish); the paced client paces it on top,
and every call made here waits behind those people wait for (`pacing.LOW`). A user group's
members listed to find the reviewers also serve the Home tabs built right after.
Best effort: a failure is logged and never reaches the change that caused it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import home, pacing
from bot.publisher import SlackPublisher
from bot.workspaces import Team
from core import home as home_uc
from core import review
from core.ports import GenerationView

log = logging.getLogger(__name__)

REMEMBERED = 1000  # last-publish times kept (older ones are past their window anyway)
GROUP_SECONDS = 10.0  # a user group's members, once listed, serve the Home tabs built this long


class HomeRefresher:
    """Republishes the Home tabs a review change touches, in background tasks.

    `sm`: the database; `publisher`: the Slack publisher (bound per workspace with
    `for_team`); `window`: the least time in seconds between two publishes for one
    person (HOME_REFRESH_SECONDS)."""

    def __init__(
        self, sm: async_sessionmaker[AsyncSession], publisher: SlackPublisher, window: float
    ) -> None:
        self.sm = sm
        self.publisher = publisher
        self.window = window
        self._tasks: set[asyncio.Task[None]] = set()
        self._fans: dict[tuple[Team, str], set[str]] = {}  # (team, channel): people to add
        self._due: set[tuple[Team, str]] = set()  # a publish is scheduled for them
        self._last: dict[tuple[Team, str], float] = {}  # loop time their last publish began
        self._noted: dict[tuple[Team, str], float] = {}  # (team, channel): its latest change
        self._groups: dict[tuple[Team, str], tuple[float, frozenset[str]]] = {}  # listed at

    def changed(self, team: Team, view: GenerationView) -> None:
        """Review items of `view`'s generation changed: refresh the Home tabs it is on
        (returns at once; the work runs in a background task). Changes in one channel
        while its audience is being worked out join that work."""
        key = (team, view.channel_id)
        people = {view.owner_user_id, view.requested_by}
        self._noted[key] = asyncio.get_running_loop().time()
        pending = self._fans.get(key)
        if pending is not None:
            pending |= people
            return
        self._fans[key] = people
        self._spawn(self._fan_out(key))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        with pacing.priority(pacing.LOW):  # the task's context: its Slack calls wait last
            task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fan_out(self, key: tuple[Team, str]) -> None:
        team, channel_id = key
        try:
            seen = await home_uc.seen(self.sm, team.team_id)
            wanted = await self._reviewers(team, channel_id, seen) if seen else set()
        except Exception as err:  # best effort: the change itself is already committed
            log.warning("could not work out whose Home tabs to refresh: %r", err)
            seen, wanted = set(), set()
        wanted |= self._fans.pop(key)  # the people named by the changes made meanwhile too
        noted = self._noted.pop(key, 0.0)
        for user_id in sorted(wanted & seen):
            self._schedule(team, user_id, noted)

    def published(self, team: Team, user_id: str) -> None:
        """A publish of `user_id`'s Home by hand starts now (see `HomeChanges.published`)."""
        self._last[(team, user_id)] = asyncio.get_running_loop().time()

    async def _reviewers(self, team: Team, channel_id: str, seen: set[str]) -> set[str]:
        """The channel's reviewers in person and through their user groups; the groups are
        listed only when someone in `seen` may be in them (each group's members are kept
        GROUP_SECONDS, for the Home tabs built next)."""
        publisher = self.publisher.for_team(team)
        policy = await review.get_policy(self.sm, team.team_id, channel_id)
        found = set(policy.reviewer_users)
        if seen <= found:
            return found  # everyone who opened Home is named in person: no group to ask
        now = asyncio.get_running_loop().time()
        for group in sorted(policy.reviewer_groups):
            members = await publisher.usergroup_members(group)
            if members is not None:
                self._groups[(team, group)] = (now, members)
                found |= members
        return found

    def _known_groups(self, team: Team) -> dict[str, frozenset[str]]:
        """{group id: members} of `team`'s groups listed in the last GROUP_SECONDS."""
        since = asyncio.get_running_loop().time() - GROUP_SECONDS
        return {
            group: members
            for (where, group), (at, members) in self._groups.items()
            if where == team and at >= since
        }

    def _schedule(self, team: Team, user_id: str, noted: float) -> None:
        """Publish `user_id`'s Home for a change noted at `noted` (loop time), unless a
        publish that read the state after it has started (by hand, after a Home click)."""
        key = (team, user_id)
        if key in self._due or self._last.get(key, -1.0) >= noted:
            return  # the publish already scheduled or started reads the newer state
        loop = asyncio.get_running_loop()
        last = self._last.get(key)
        delay = 0.0 if last is None else max(0.0, last + self.window - loop.time())
        self._due.add(key)
        self._spawn(self._publish_after(key, delay, noted))

    async def _publish_after(self, key: tuple[Team, str], delay: float, noted: float) -> None:
        team, user_id = key
        try:
            await asyncio.sleep(delay)
        finally:
            self._due.discard(key)
        if self._last.get(key, -1.0) >= noted:
            return  # published by hand meanwhile, after the change
        loop = asyncio.get_running_loop()
        self._last[key] = loop.time()
        if len(self._last) > REMEMBERED:
            old = loop.time() - self.window
            self._last = {k: t for k, t in self._last.items() if t > old}
        if len(self._groups) > REMEMBERED:
            old = loop.time() - GROUP_SECONDS
            self._groups = {k: v for k, v in self._groups.items() if v[0] > old}
        try:
            publisher = self.publisher.for_team(team)
            known = self._known_groups(team)
            await home.publish_for(self.sm, publisher, team.team_id, user_id, known)
        except Exception as err:  # best effort, as above
            log.warning("could not refresh a Home tab: %r", err)

    @property
    def busy(self) -> bool:
        """Whether a refresh is still waiting or running."""
        return bool(self._tasks)

    async def aclose(self) -> None:
        """Cancel the refreshes still waiting or running."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
