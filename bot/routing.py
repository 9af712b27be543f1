"""The job engine's publisher: each generation's Slack calls go out with its workspace's
token (OAuth mode), however long after the request the engine runs them."""

from __future__ import annotations

from bot.publisher import SlackPublisher
from bot.workspaces import Team
from core.ports import Effect, Failure, GenerationView, UploadState


def team_of(view: GenerationView) -> Team:
    """The workspace (and Grid org) a generation's session belongs to."""
    return Team(view.team_id, view.enterprise_id)


class RoutedPublisher:
    """The Publisher port over `SlackPublisher.for_team(team_of(view))` for each call."""

    def __init__(self, base: SlackPublisher) -> None:
        self.base = base

    def _for(self, view: GenerationView) -> SlackPublisher:
        return self.base.for_team(team_of(view))

    async def open_thread(self, view: GenerationView) -> str:
        """See SlackPublisher.open_thread."""
        return await self._for(view).open_thread(view)

    async def show_status(self, view: GenerationView, *, force: bool = False) -> str | None:
        """See SlackPublisher.show_status."""
        return await self._for(view).show_status(view, force=force)

    async def find_posted(self, view: GenerationView, effect: Effect, since: float) -> str | None:
        """See SlackPublisher.find_posted."""
        return await self._for(view).find_posted(view, effect, since)

    async def reserve_uploads(self, view: GenerationView) -> dict[int, str]:
        """See SlackPublisher.reserve_uploads."""
        return await self._for(view).reserve_uploads(view)

    async def share_uploads(self, view: GenerationView, file_ids: dict[int, str]) -> None:
        """See SlackPublisher.share_uploads."""
        await self._for(view).share_uploads(view, file_ids)

    async def uploads_state(self, view: GenerationView, file_ids: dict[int, str]) -> UploadState:
        """See SlackPublisher.uploads_state."""
        return await self._for(view).uploads_state(view, file_ids)

    async def post_result(self, view: GenerationView) -> str:
        """See SlackPublisher.post_result."""
        return await self._for(view).post_result(view)

    async def update_result(self, view: GenerationView) -> None:
        """See SlackPublisher.update_result."""
        await self._for(view).update_result(view)

    async def mention_reviewers(self, view: GenerationView) -> str:
        """See SlackPublisher.mention_reviewers."""
        return await self._for(view).mention_reviewers(view)

    async def report_failure(self, view: GenerationView, failure: Failure) -> None:
        """See SlackPublisher.report_failure."""
        await self._for(view).report_failure(view, failure)

    async def tell_requester(self, view: GenerationView, failure: Failure) -> None:
        """See SlackPublisher.tell_requester."""
        await self._for(view).tell_requester(view, failure)

    async def review_items_changed(self, view: GenerationView) -> None:
        """See SlackPublisher.review_items_changed."""
        await self._for(view).review_items_changed(view)
