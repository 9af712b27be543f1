"""The result cache (issue 11): an identical deterministic request reuses the stored images
(no provider request, cost 0, said in the result), `--fresh` makes new ones, a provider
that takes no seed is never served from the cache; and OpenAI's reported `usage` is what
the spend counts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from core import usage
from core.models import GenerationState, ImageRow
from core.providers.base import ProviderInfo
from core.providers.openai import OpenAIProvider
from core.quotas import CostPolicy
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_server import FakeOpenAI
from tests.harness import ALICE, BOB, Harness, block_text

S = GenerationState


class SeededOpenAI(OpenAIProvider):
    """OpenAI's wire protocol, declared as honouring seeds (a gateway that does)."""

    info: ProviderInfo = replace(OpenAIProvider.info, honours_seed=True)


async def _posted(bot: Harness, text: str, user: str = ALICE) -> int:
    before = len(await bot.generations())
    answer = await bot.imagine(text, user=user)
    assert answer.status == 200 and not answer.text, answer.text
    rows = await bot.wait_generations(before + 1)
    return (await bot.wait_state(rows[before].id, S.POSTED)).id


async def _result_text(bot: Harness, generation_id: int) -> str:
    thread = bot.thread(await bot.thread_of(generation_id))
    return "\n".join(block_text(m) for m in thread)


async def _images(bot: Harness, generation_id: int) -> list[str]:
    async with bot.sm() as s:
        query = select(ImageRow.sha256).where(ImageRow.generation_id == generation_id)
        return list((await s.scalars(query.order_by(ImageRow.index))).all())


async def test_identical_request_reuses_images_without_asking_the_provider(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    provider = SeededOpenAI(OPENAI_KEY, openai_fake.root_url + "/v1", timeout=5)
    bot = await Harness(tmp_path, provider=provider, duplicate_window_seconds=0).start()
    try:
        first = await _posted(bot, "a lighthouse --seed 7 --quality low")
        assert len(openai_fake.calls("generations")) == 1
        again = await _posted(bot, "a lighthouse --seed 7 --quality low", user=BOB)
        assert len(openai_fake.calls("generations")) == 1  # no request reached the server
        assert "Reused from an identical request" in await _result_text(bot, again)
        assert await _images(bot, again) == await _images(bot, first)
        assert (await bot.generation(again)).cost_usd == 0
        other_seed = await _posted(bot, "a lighthouse --seed 8 --quality low")
        assert len(openai_fake.calls("generations")) == 2
        fresh = await _posted(bot, "a lighthouse --seed 7 --quality low --fresh")
        assert len(openai_fake.calls("generations")) == 3
        assert "Reused" not in await _result_text(bot, fresh)
        assert "Reused" not in await _result_text(bot, other_seed)
        team = await usage.team(bot.sm, CostPolicy(), "T0TEAM")
        assert (team.month.reused, team.month.generations) == (1, 4)
        assert team.cache_hit_rate == 0.25
    finally:
        await bot.close()


async def test_a_provider_without_seeds_is_always_asked(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    bot = await Harness(
        tmp_path,
        image_provider="openai",
        openai_api_key=OPENAI_KEY,
        openai_base_url=openai_fake.root_url + "/v1",
        duplicate_window_seconds=0,
    ).start()
    try:
        await _posted(bot, "a lighthouse --seed 7 --quality low")
        again = await _posted(bot, "a lighthouse --seed 7 --quality low")
        assert len(openai_fake.calls("generations")) == 2
        assert "Reused" not in await _result_text(bot, again)
        # Spend follows OpenAI's reported usage (10 text + 40 image input tokens, 50 output
        # tokens at $5/$10/$40 per million), not the $0.011 list price.
        team = await usage.team(bot.sm, CostPolicy(), "T0TEAM")
        assert team.month.usd == 2 * 0.00245
    finally:
        await bot.close()


async def test_the_local_renderer_reuses_a_seeded_request(tmp_path: Path) -> None:
    bot = await Harness(tmp_path, local_render_seconds=0.1, duplicate_window_seconds=0).start()
    try:
        await _posted(bot, "a kite --seed 3 --n 2")
        again = await _posted(bot, "a kite --seed 3 --n 2")
        assert len(bot.provider.submitted_task_ids) == 1  # type: ignore[union-attr]
        assert len(await _images(bot, again)) == 2
        await _posted(bot, "a kite --seed 3 --n 2 --fresh")
        assert len(bot.provider.submitted_task_ids) == 2  # type: ignore[union-attr]
    finally:
        await bot.close()
