"""The refinement loop in a thread, over real HTTP: replies, references, masks, branching,
cancel, history, ordering, and every bad input with what the person sees."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from core.db import jobs as jobs_db
from core.db import refinement as refinement_db
from core.db.sessions import discard_session
from core.jobs.request import build_request
from core.models import AttachmentRow, GenerationRow, GenerationState, ImageRow
from core.providers.local import LocalProvider
from core.providers.toapis import ToAPIsProvider
from core.schedule import PollSchedule
from tests.fakes import png_bytes
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.toapis_server import FakeToAPIs
from tests.harness import ALICE, BOB, CHANNEL, Harness, block_text, buttons

S = GenerationState
FAST = PollSchedule(first=0.05, interval=0.05, factor=1.0, cap=0.1, jitter=0.1)


@pytest.fixture
async def openai(tmp_path: Path, openai_fake: FakeOpenAI) -> AsyncIterator[Harness]:
    harness = await Harness(
        tmp_path,
        image_provider="openai",
        openai_api_key="sk-test-key",
        openai_base_url=openai_fake.root_url + "/v1",
    ).start()
    yield harness
    await harness.close()


async def _v1(harness: Harness, prompt: str = "a lighthouse at dusk") -> tuple[GenerationRow, str]:
    await harness.imagine(prompt)
    [v1] = await harness.wait_generations(1)
    v1 = await harness.wait_state(v1.id, S.POSTED)
    return v1, await harness.thread_of(v1.id)


async def _reply(harness: Harness, thread_ts: str, text: str, user: str = BOB, files=None):  # type: ignore[no-untyped-def]
    _ts, delivery = await harness.emulator.post_user_message(
        user, CHANNEL, text, thread_ts=thread_ts, files=files
    )
    assert delivery is not None and delivery.status == 200
    return delivery


async def _next_version(harness: Harness, count: int) -> GenerationRow:
    rows = await harness.wait_generations(count)
    return await harness.wait_state(rows[count - 1].id, S.POSTED)


async def _image(harness: Harness, generation_id: int, index: int = 0) -> ImageRow:
    async with harness.sm() as s:
        image = await s.scalar(
            select(ImageRow).where(ImageRow.generation_id == generation_id, ImageRow.index == index)
        )
    assert image is not None
    return image


def _bytes(image: ImageRow) -> bytes:
    return Path(image.path).read_bytes()


def _replies_text(harness: Harness, thread_ts: str) -> str:
    return "\n".join(block_text(m) for m in harness.thread(thread_ts))


def _png(color: tuple[int, int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    return png_bytes(size[0], size[1], color)


def _mask_png(size: tuple[int, int]) -> bytes:
    """Opaque with a transparent square in the middle (the area to repaint)."""
    img = Image.new("RGBA", size, (0, 0, 0, 255))
    w, h = size
    img.paste((0, 0, 0, 0), (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


async def test_reply_refines_the_latest_image_and_keeps_the_chain(
    openai: Harness, openai_fake: FakeOpenAI
) -> None:
    v1, thread_ts = await _v1(openai)
    await _reply(openai, thread_ts, "make it blue")
    v2 = await _next_version(openai, 2)

    [edit] = openai_fake.calls("edits")
    [base_part] = edit.parts_named("image[]")
    v1_image = await _image(openai, v1.id)
    assert base_part.data == _bytes(v1_image)
    prompt = edit.form()["prompt"]
    assert "a lighthouse at dusk" in prompt and "make it blue" in prompt
    assert (v2.kind, v2.version, v2.instruction) == ("refine", 2, "make it blue")
    assert (v2.parent_generation_id, v2.parent_image_id) == (v1.id, v1_image.id)
    assert v2.session_id == v1.session_id and v2.requested_by == BOB

    result = openai.thread(thread_ts)[-1]
    assert "*v2*, from v1 image 1: _make it blue_" in block_text(result)

    # The next reply edits v2 and the provider gets the whole chain of instructions.
    await _reply(openai, thread_ts, "add a small boat")
    v3 = await _next_version(openai, 3)
    last_edit = openai_fake.calls("edits")[-1]
    assert last_edit.parts_named("image[]")[0].data == _bytes(await _image(openai, v2.id))
    chain = last_edit.form()["prompt"]
    assert chain.index("make it blue") < chain.index("add a small boat")
    assert v3.parent_generation_id == v2.id


async def test_thread_images_become_references_newest_five_win(
    openai: Harness, openai_fake: FakeOpenAI
) -> None:
    v1, thread_ts = await _v1(openai)
    red, green = _png((255, 0, 0, 255)), _png((0, 255, 0, 255))
    await _reply(
        openai,
        thread_ts,
        "",
        files=[("red.png", red, "image/png"), ("green.png", green, "image/png")],
    )
    got = await openai.emulator.wait_for(
        lambda: [m for m in openai.thread(thread_ts) if m.bot_id and "Got" in m.text]
    )
    assert "red.png" in got[0].text and "2 images will go with the next refinement" in got[0].text

    await _reply(openai, thread_ts, "use these colours")
    v2 = await _next_version(openai, 2)
    parts = [p.data for p in openai_fake.calls("edits")[0].parts_named("image[]")]
    assert parts == [_bytes(await _image(openai, v1.id)), red, green]
    result = openai.thread(thread_ts)[-1]
    assert "References: red.png, green.png" in block_text(result)

    # Six in one message: with the base that makes seven; the newest four go with it.
    six = [(f"ref{i}.png", _png((i * 40, 0, 0, 255)), "image/png") for i in range(6)]
    await _reply(openai, thread_ts, "blend all of these", files=six)
    v3 = await _next_version(openai, 3)
    sent = openai_fake.calls("edits")[-1].parts_named("image[]")
    assert len(sent) == 5
    assert sent[0].data == _bytes(await _image(openai, v2.id))
    assert [p.data for p in sent[1:]] == [data for _, data, _ in six[2:]]
    text = _replies_text(openai, thread_ts)
    assert "5 images at most" in text and "ref0.png, ref1.png" in text
    assert "not used" in block_text(openai.thread(thread_ts)[-1])
    assert v3.inputs_note and "ref5.png" in v3.inputs_note


async def test_mask_for_openai_edits_is_scaled_to_the_base(
    openai: Harness, openai_fake: FakeOpenAI
) -> None:
    v1, thread_ts = await _v1(openai)
    base = await _image(openai, v1.id)
    await _reply(openai, thread_ts, "mask", files=[("hole.png", _mask_png((64, 64)), "image/png")])
    ack = await openai.emulator.wait_for(
        lambda: [m for m in openai.thread(thread_ts) if "as the mask" in m.text]
    )
    assert f"scaled it to {base.width}×{base.height}" in ack[0].text

    await _reply(openai, thread_ts, "fireworks in the hole")
    await _next_version(openai, 2)
    [edit] = openai_fake.calls("edits")
    [mask_part] = edit.parts_named("mask")
    mask = Image.open(io.BytesIO(mask_part.data))
    assert mask.format == "PNG" and mask.mode == "RGBA"
    assert mask.size == (base.width, base.height)
    assert mask.getpixel((base.width // 2, base.height // 2))[3] == 0  # repaint here
    assert mask.getpixel((0, 0))[3] == 255  # keep


async def test_mask_for_toapis_is_uploaded_and_sent_as_mask_url(tmp_path: Path) -> None:
    fake = FakeToAPIs(api_key="toapis-test-key")
    await fake.start()
    provider = ToAPIsProvider("toapis-test-key", fake.root_url, None, timeout=5)
    provider.poll_schedule = FAST
    harness = await Harness(tmp_path, provider=provider, image_provider="toapis").start()
    try:
        _v1_row, thread_ts = await _v1(harness)
        await _reply(
            harness,
            thread_ts,
            "mask: put a moon here",
            files=[("mask.png", _mask_png((16, 16)), "image/png")],
        )
        await _next_version(harness, 2)
        uploads = fake.calls("upload")
        assert len(uploads) == 2  # the base image, then the mask
        submit = fake.calls("submit")[-1].json
        assert submit["mask_url"] and submit["image_urls"]
        assert submit["mask_url"] not in submit["image_urls"]
        assert "put a moon here" in submit["prompt"]
    finally:
        await harness.close()
        await fake.stop()


async def test_refine_this_branches_from_an_old_version(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    try:
        v1, thread_ts = await _v1(harness, "a fox in snow")
        await _reply(harness, thread_ts, "make it night")
        v2 = await _next_version(harness, 2)
        await _reply(harness, thread_ts, "add the northern lights")
        v3 = await _next_version(harness, 3)
        v1_result = next(
            m for m in harness.thread(thread_ts) if ("refine_this", f"{v1.id}:0") in buttons(m)
        )

        await harness.emulator.click_button(
            ALICE, CHANNEL, v1_result.ts, "refine_this", f"{v1.id}:0"
        )
        await harness.emulator.wait_for(
            lambda: "picked *v1 image 1*" in _replies_text(harness, thread_ts)
        )
        await _reply(harness, thread_ts, "make it summer")
        v4 = await _next_version(harness, 4)
        v1_image = await _image(harness, v1.id)
        assert v4.parent_image_id == v1_image.id and v4.parent_generation_id == v1.id
        assert "make it summer" in (v4.provider_prompt or "")
        assert "night" not in (v4.provider_prompt or "")
        # The later versions are intact.
        for earlier in (v2, v3):
            again = await harness.generation(earlier.id)
            assert again.state == S.POSTED and again.result_ts == earlier.result_ts
        # The pick stays: the next reply also starts from v1.
        await _reply(harness, thread_ts, "add flowers")
        v5 = await _next_version(harness, 5)
        assert v5.parent_image_id == v1_image.id
    finally:
        await harness.close()


async def test_cancel_during_polling_stops_at_the_provider_and_posts_nothing(
    tmp_path: Path,
) -> None:
    provider = LocalProvider(render_seconds=30)
    harness = await Harness(tmp_path, provider=provider).start()
    try:
        await harness.imagine("a slow painting")
        [row] = await harness.generations()
        # Submitted, and its status message (with Cancel) posted: the thread opens after
        # the submit.
        row = await harness.wait_row(row.id, lambda r: r.state == S.SUBMITTED and r.status_ts)
        thread_ts = await harness.thread_of(row.id)
        status = harness.thread(thread_ts)[1]
        assert ("cancel", str(row.id)) in buttons(status)

        await harness.emulator.click_button(BOB, CHANNEL, status.ts, "cancel")
        notice = await harness.emulator.wait_for(lambda: harness.emulator.ephemerals_for(BOB))
        assert "can cancel" in notice[0].text
        assert (await harness.generation(row.id)).cancel_requested is False

        await harness.emulator.click_button(ALICE, CHANNEL, status.ts, "cancel")
        done = await harness.wait_state(row.id, S.CANCELLED, within=10)
        assert done.provider_task_id
        await harness.emulator.wait_for(
            lambda: "cancelled" in harness.emulator.message(CHANNEL, status.ts).text
        )
        status = harness.emulator.message(CHANNEL, status.ts)
        assert buttons(status) == []
        assert [m for m in harness.thread(thread_ts) if m.files] == []
        job = await jobs_db.load(harness.sm, done.id)
        assert job is not None and harness.runtime is not None
        inputs = await refinement_db.generation_inputs(harness.sm, done.id)
        request = await build_request(job, inputs, harness.runtime.store, None)
        late = await provider.poll(done.provider_task_id, request)
        assert late.state == "failed"  # the provider was told to cancel
    finally:
        await harness.close()


async def test_two_quick_replies_queue_in_order_on_the_same_base(tmp_path: Path) -> None:
    # v2 renders for 3 s, longer than the paced status edits' 1.5 s gap (bot/status_edits.py),
    # so v3's "queued behind v2" is shown before v2 is done (coalesced edits skip states
    # that are already over).
    harness = await Harness(tmp_path, local_render_seconds=3.0).start()
    try:
        v1, thread_ts = await _v1(harness, "a kite")
        await _reply(harness, thread_ts, "make it red")
        await _reply(harness, thread_ts, "make it green")
        rows = await harness.wait_generations(3)
        v2, v3 = rows[1], rows[2]
        await harness.wait_row(v3.id, lambda r: r.waiting is not None)
        emu = harness.emulator
        await emu.wait_for(
            lambda: any(
                "*v3*" in (c.params.get("text") or "")
                and "queued behind v2" in (c.params.get("text") or "")
                for c in emu.calls_to("chat.postMessage") + emu.calls_to("chat.update")
            ),
            within=10,
        )
        v2 = await harness.wait_state(v2.id, S.POSTED)
        v3 = await harness.wait_state(v3.id, S.POSTED)
        v1_image = await _image(harness, v1.id)
        assert v2.parent_image_id == v1_image.id == v3.parent_image_id
        assert (v2.finished_at or 0) <= (v3.submitted_at or 0)
    finally:
        await harness.close()


async def test_history_lists_versions_and_sessions(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    try:
        _v1_row, thread_ts = await _v1(harness, "a tea cup")
        await _reply(harness, thread_ts, "make it porcelain")
        v2 = await _next_version(harness, 2)
        result = harness.thread(thread_ts)[-1]
        await harness.emulator.click_button(BOB, CHANNEL, result.ts, "history")
        [listing] = await harness.emulator.wait_for(lambda: harness.emulator.ephemerals_for(BOB))
        assert "v1" in listing.text and "a tea cup" in listing.text
        assert "v2" in listing.text and "from v1 image 1: make it porcelain" in listing.text
        assert v2.result_ts

        answer = await harness.imagine("history")
        text = answer.json()["text"]
        assert "a tea cup" in text and "2 versions" in text and "<#C0DESIGN>" in text
    finally:
        await harness.close()


# ── bad input ────────────────────────────────────────────────────────────────


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    yield harness
    await harness.close()


async def _attachments(harness: Harness) -> int:
    return await harness.count(AttachmentRow)


async def test_empty_reply_is_answered_privately(local: Harness) -> None:
    _v1_row, thread_ts = await _v1(local)
    await _reply(local, thread_ts, "   ")
    [notice] = await local.emulator.wait_for(lambda: local.emulator.ephemerals_for(BOB))
    assert "Tell me what to change" in notice.text and notice.thread_ts == thread_ts
    assert len(await local.generations()) == 1


async def test_bad_flags_in_a_reply_queue_nothing(local: Harness) -> None:
    _v1_row, thread_ts = await _v1(local)
    await _reply(local, thread_ts, "bigger --n 9")
    [notice] = await local.emulator.wait_for(lambda: local.emulator.ephemerals_for(BOB))
    assert "1, 2, 3 or 4" in notice.text and "Nothing was queued" in notice.text
    assert len(await local.generations()) == 1


async def test_a_reply_with_flags_changes_only_that_version(local: Harness) -> None:
    v1, thread_ts = await _v1(local)
    await _reply(local, thread_ts, "three of them --n 3 --seed 7")
    v2 = await _next_version(local, 2)
    assert (v2.params["n"], v2.seed) == (3, 7)
    await _reply(local, thread_ts, "now in watercolour")
    v3 = await _next_version(local, 3)
    assert v3.params["n"] == v1.params["n"] == 1 and v3.seed != 7


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("big.png", b"\x89PNG\r\n\x1a\n" + bytes(50 * 1024 * 1024), "50"),
        ("doc.png", b"%PDF-1.7\n" + bytes(64), "PDF"),
    ],
)
async def test_unusable_files_get_a_thread_reply_and_are_not_used(
    local: Harness, name: str, data: bytes, says: str
) -> None:
    _v1_row, thread_ts = await _v1(local)
    await _reply(local, thread_ts, "", files=[(name, data, "image/png")])
    problem = await local.emulator.wait_for(
        lambda: [m for m in local.thread(thread_ts) if m.bot_id and name in m.text]
    )
    assert says in problem[0].text
    assert await _attachments(local) == 0
    assert len(await local.generations()) == 1


async def test_a_gif_renamed_png_is_refused_by_content(local: Harness) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(gif, "GIF")
    _v1_row, thread_ts = await _v1(local)
    await _reply(local, thread_ts, "", files=[("photo.png", gif.getvalue(), "image/png")])
    problem = await local.emulator.wait_for(
        lambda: [m for m in local.thread(thread_ts) if m.bot_id and "photo.png" in m.text]
    )
    assert "GIF" in problem[0].text and "PNG" in problem[0].text
    assert await _attachments(local) == 0


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (_png((0, 0, 0, 255), (16, 16)), "transparent"),  # opaque everywhere
        (Image.new("RGB", (4, 4)).tobytes(), "PNG"),  # not an image at all
    ],
)
async def test_wrong_masks_are_refused_with_an_explanation(
    local: Harness, data: bytes, says: str
) -> None:
    _v1_row, thread_ts = await _v1(local)
    await _reply(local, thread_ts, "mask", files=[("mask.png", data, "image/png")])
    problem = await local.emulator.wait_for(
        lambda: [m for m in local.thread(thread_ts) if m.bot_id and "mask.png" in m.text]
    )
    assert says in problem[0].text
    assert await _attachments(local) == 0


async def test_replies_outside_imagine_threads_are_ignored(local: Harness) -> None:
    emu = local.emulator
    root_ts, _ = await emu.post_user_message(ALICE, CHANNEL, "lunch?")
    await _reply(local, root_ts, "make it blue")
    await emu.wait_idle()
    assert [m for m in emu.messages(CHANNEL) if m.bot_id] == []
    assert emu.ephemerals == [] and await local.generations() == []


async def test_a_session_still_works_after_its_owner_left(local: Harness) -> None:
    _v1_row, thread_ts = await _v1(local)
    local.emulator.ws.channels[CHANNEL].members.discard(ALICE)
    await _reply(local, thread_ts, "make it brighter", user=BOB)
    v2 = await _next_version(local, 2)
    assert v2.requested_by == BOB


async def test_a_click_on_a_deleted_version_says_it_is_gone(local: Harness) -> None:
    v1, thread_ts = await _v1(local)
    result = local.thread(thread_ts)[-1]
    await discard_session(local.sm, v1.session_id)
    for action in ("approve", "regenerate", "refine_this", "history"):
        await local.emulator.click_button(BOB, CHANNEL, result.ts, action)
    notices = await local.emulator.wait_for(
        lambda: len(local.emulator.ephemerals_for(BOB)) == 4 and local.emulator.ephemerals_for(BOB)
    )
    assert all("This version is gone" in n.text for n in notices)
    assert await local.generations() == []


async def test_a_five_step_conversation_in_one_thread(tmp_path: Path) -> None:
    """Generate, refine twice, add a reference, mask a region, branch from v1."""
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    emu = harness.emulator
    try:
        v1, thread_ts = await _v1(harness, "a cabin by a lake --ar 3:2 --seed 11")
        await _reply(harness, thread_ts, "make it winter")
        v2 = await _next_version(harness, 2)
        await _reply(harness, thread_ts, "add smoke from the chimney", user=ALICE)
        v3 = await _next_version(harness, 3)
        await _reply(
            harness,
            thread_ts,
            "paint it like this one",
            files=[("style.png", _png((30, 60, 200, 255), (40, 30)), "image/png")],
        )
        v4 = await _next_version(harness, 4)
        await _reply(
            harness,
            thread_ts,
            "mask: a red canoe on the water",
            files=[("mask.png", _mask_png((300, 200)), "image/png")],
        )
        v5 = await _next_version(harness, 5)
        v1_result = next(
            m for m in harness.thread(thread_ts) if ("refine_this", f"{v1.id}:0") in buttons(m)
        )
        await emu.click_button(BOB, CHANNEL, v1_result.ts, "refine_this", f"{v1.id}:0")
        await emu.wait_for(lambda: "picked *v1 image 1*" in _replies_text(harness, thread_ts))
        await _reply(harness, thread_ts, "make it autumn instead")
        v6 = await _next_version(harness, 6)

        images = {row.version: await _image(harness, row.id) for row in (v1, v2, v3, v4, v5)}
        assert [v2.parent_image_id, v3.parent_image_id, v4.parent_image_id] == [
            images[1].id,
            images[2].id,
            images[3].id,
        ]
        assert v5.parent_image_id == images[4].id and v6.parent_image_id == images[1].id
        assert "make it winter" in (v3.provider_prompt or "")
        assert v4.inputs_note and "style.png" in v4.inputs_note
        assert v5.inputs_note and "mask.png" in v5.inputs_note
        assert "winter" not in (v6.provider_prompt or "")
        # Every version is a 3:2 PNG in the same thread, and each one looks different.
        files = [m.files[0] for m in harness.thread(thread_ts) if m.files and m.bot_id]
        assert len(files) == 6
        pictures = [Image.open(io.BytesIO(emu.file_bytes(f.id))) for f in files]
        assert all(p.size[0] * 2 == p.size[1] * 3 for p in pictures)
        assert len({emu.file_bytes(f.id) for f in files}) == 6
        # The masked version kept the base outside the mask and repainted inside it.
        base, masked = pictures[3].convert("RGB"), pictures[4].convert("RGB")
        w, h = base.size
        assert base.getpixel((2, 2)) == masked.getpixel((2, 2))
        assert base.getpixel((w // 2, h // 2)) != masked.getpixel((w // 2, h // 2))
    finally:
        await harness.close()
