"""What a person's App Home shows (issue 10), as plain data: images waiting for their
review, their recent sessions and recently approved images.

Who is in which user group and which channels a person is in are the platform's to say;
the caller resolves them (`review_groups` names the groups to ask about) and passes them
in. Only channels the person is in are listed, so Home never shows an image from a
conversation its viewer cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import home as home_db
from core.db.home import HomeImage, HomeSession
from core.policy import judge

__all__ = [
    "HomeData",
    "HomeImage",
    "HomeSession",
    "home",
    "mark_seen",
    "review_groups",
    "seen",
]

WAITING_ITEMS = 10  # images under "Waiting for your review"
SESSION_ITEMS = 5  # sessions under "Your recent sessions"
APPROVED_ITEMS = 5  # images under "Recently approved"


@dataclass(frozen=True)
class HomeData:
    """The three lists of a Home tab, newest first."""

    waiting: list[HomeImage]
    sessions: list[HomeSession]
    approved: list[HomeImage]


async def review_groups(sm: async_sessionmaker[AsyncSession], team_id: str) -> frozenset[str]:
    """Every user group named as reviewers in a policy of the team (ask the platform which
    of them a viewer is in, then pass those to `home`)."""
    async with sm() as db:
        policies = await home_db.team_policies(db, team_id)
    return frozenset(group for policy in policies.values() for group in policy.reviewer_groups)


async def home(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    user_id: str,
    *,
    user_groups: frozenset[str],
    channels: frozenset[str],
) -> HomeData:
    """`user_id`'s Home lists. `user_groups`: the reviewer groups they are in;
    `channels`: the channel ids they are a member of.

    Waiting: unapproved images without a change request in channels (of `channels`) whose
    policy names `user_id` as a reviewer (in person or by group), which they have not
    approved yet and which the policy lets them approve (self-approval). Sessions: theirs,
    anywhere. Approved: in `channels`."""
    async with sm() as db:
        policies = await home_db.team_policies(db, team_id)
        mine = {
            channel: policy
            for channel, policy in policies.items()
            if channel in channels
            and policy.has_reviewers
            and judge(policy, user_id, (), user_groups) is None
        }
        candidates = await home_db.waiting_images(
            db, team_id, sorted(mine), user_id, WAITING_ITEMS * 3
        )
        waiting = [
            image
            for image in candidates
            if judge(
                mine[image.channel_id], user_id, (image.requested_by, image.owner), user_groups
            )
            is None
        ][:WAITING_ITEMS]
        sessions = await home_db.recent_sessions(db, team_id, user_id, SESSION_ITEMS)
        approved = await home_db.recently_approved(db, team_id, sorted(channels), APPROVED_ITEMS)
    return HomeData(waiting, sessions, approved)


async def mark_seen(sm: async_sessionmaker[AsyncSession], team_id: str, user_id: str) -> None:
    """Remember that `user_id` opened the Home tab (their Home is then republished when
    items on it change)."""
    async with sm.begin() as db:
        await home_db.mark_seen(db, team_id, user_id)


async def seen(sm: async_sessionmaker[AsyncSession], team_id: str) -> set[str]:
    """The user ids of the team who have opened the Home tab at least once."""
    async with sm() as db:
        return await home_db.seen(db, team_id)
