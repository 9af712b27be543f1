"""The local preview renderer's picture and caption (issue 9): one clean caption with what
the person typed, and a picture that follows the words it recognises."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from PIL import Image, ImageChops, ImageStat
from PIL.PngImagePlugin import PngInfo

from core.prompts import compose_prompt
from core.providers.base import GenerationRequest
from core.providers.local.provider import caption_for
from core.providers.local.render import METADATA_KEY, caption_band_height, render_png
from core.providers.local.words import COLOURS, read_plan
from tests.harness import BOB, CHANNEL, Harness

W, H = 320, 240


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def _band(data: bytes) -> Image.Image:
    """The caption band of a rendered PNG (the bottom rows the renderer says it drew)."""
    height = caption_band_height(data)
    assert height, "no caption band"
    img = _open(data)
    return img.crop((0, img.height - height, img.width, img.height))


def _scene(data: bytes) -> Image.Image:
    """The picture above the caption band."""
    img = _open(data)
    return img.crop((0, 0, img.width, img.height - (caption_band_height(data) or 0)))


def _reds(img: Image.Image) -> int:
    """How many pixels are clearly red (R > 150, G and B < 80)."""
    r, g, b = img.split()
    red = ImageChops.multiply(
        r.point(lambda v: 255 if v > 150 else 0), g.point(lambda v: 255 if v < 80 else 0)
    )
    return ImageChops.multiply(red, b.point(lambda v: 255 if v < 80 else 0)).histogram()[255]


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.tobytes() == b.tobytes()


# --- the caption -------------------------------------------------------------------------


def test_caption_for_is_what_the_person_typed() -> None:
    request = GenerationRequest(
        prompt="a lighthouse. Edit the provided image: make it night. Keep everything else.",
        width=W,
        height=H,
        aspect_ratio="4:3",
        typed_prompt="  make it\nnight ",
    )
    assert caption_for(request) == "make it night"
    assert caption_for(GenerationRequest("a  red\tfox", W, H, "4:3")) == "a red fox"


def test_the_caption_band_shows_the_caption_not_the_provider_prompt() -> None:
    provider_prompt = compose_prompt("a lighthouse at dusk", ["make it night"], has_base=True)
    shown = render_png(provider_prompt, W, H, 5, caption="make it night")
    typed_alone = render_png("make it night", W, H, 5)
    internal = render_png(provider_prompt, W, H, 5)
    assert _same(_band(shown), _band(typed_alone))  # the same text in the same band
    assert not _same(_band(shown), _band(internal))  # …and not the long internal prompt
    # The picture still follows the whole prompt (a lighthouse at night, not "make it night").
    assert not _same(_scene(shown), _scene(typed_alone))


def test_the_band_holds_text_and_the_picture_has_none() -> None:
    with_text = _open(render_png("a red fox", W, H, 3, caption="a red fox"))
    without = _open(render_png("a red fox", W, H, 3, caption=""))
    band = caption_band_height(render_png("a red fox", W, H, 3))
    assert band and band < H * 0.4
    top = (0, 0, W, H - band - 1)
    assert _same(with_text.crop(top), without.crop(top))  # nothing written on the picture
    bottom = (0, H - band, W, H)
    assert not _same(with_text.crop(bottom), without.crop(bottom))


def test_refinements_do_not_accumulate_captions(tmp_path: Path) -> None:
    """v2 and v3 drawn from the previous version's image show exactly the band a fresh
    render with their caption shows: nothing of the earlier captions ghosts through."""
    chain: list[str] = []
    previous = tmp_path / "v1.png"
    previous.write_bytes(render_png("a lighthouse above the sea at dusk", W, H, 1))
    sizes = {2: (W, H), 3: (H, W)}  # v3 changes the aspect ratio: the base is cropped and scaled
    for version, reply in ((2, "make it night"), (3, "add a red house")):
        chain.append(reply)
        prompt = compose_prompt("a lighthouse above the sea at dusk", chain, has_base=True)
        width, height = sizes[version]
        refined = render_png(prompt, width, height, version, caption=reply, references=[previous])
        fresh = render_png(prompt, width, height, version, caption=reply)
        assert _same(_band(refined), _band(fresh))
        path = tmp_path / f"v{version}.png"
        path.write_bytes(refined)
        previous = path


def test_a_refinement_keeps_the_composition_and_applies_the_change(tmp_path: Path) -> None:
    base = tmp_path / "v1.png"
    base.write_bytes(render_png("a house on a hill at noon", W, H, 1))
    prompt = compose_prompt("a house on a hill at noon", ["make it night"], has_base=True)
    v2 = render_png(prompt, W, H, 2, caption="make it night", references=[base])
    v1_light = ImageStat.Stat(_scene(base.read_bytes()).convert("L")).mean[0]
    v2_light = ImageStat.Stat(_scene(v2).convert("L")).mean[0]
    assert v2_light < v1_light - 40
    assert render_png(prompt, W, H, 2, caption="make it night", references=[base]) == v2
    # v2 is laid out like v1, not like a fresh render with v2's own seed.
    fresh = render_png(prompt, W, H, 2, caption="make it night")
    assert fresh != v2 and _same(_band(fresh), _band(v2))


async def test_a_refinement_in_slack_is_captioned_with_the_reply(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    try:
        await harness.imagine("a lighthouse above the sea at dusk")
        [v1] = await harness.wait_generations(1)
        await harness.wait_state(v1.id, "posted")
        thread_ts = await harness.thread_of(v1.id)
        _ts, delivery = await harness.emulator.post_user_message(
            BOB, CHANNEL, "make it night", thread_ts=thread_ts
        )
        assert delivery is not None and delivery.status == 200
        v2 = (await harness.wait_generations(2))[1]
        v2 = await harness.wait_state(v2.id, "posted")
        assert "Edit the provided image" in (v2.provider_prompt or "")
        files = [m.files[0] for m in harness.thread(thread_ts) if m.files and m.bot_id]
        data = harness.emulator.file_bytes(files[-1].id)
        width, height = _open(data).size
        expected = render_png("make it night", width, height, v2.seed)
        assert _same(_band(data), _band(expected))
    finally:
        await harness.close()


# --- the picture follows the words --------------------------------------------------------


def test_colours_change_the_dominant_hue() -> None:
    for seed in range(4):
        red = ImageStat.Stat(_scene(render_png("a red landscape", W, H, seed))).mean
        blue = ImageStat.Stat(_scene(render_png("a blue landscape", W, H, seed))).mean
        assert red[0] - red[2] > blue[0] - blue[2] + 40, (seed, red, blue)
    teal = ImageStat.Stat(_scene(render_png("teal", W, H, 9))).mean
    gold = ImageStat.Stat(_scene(render_png("gold", W, H, 9))).mean
    assert teal[2] - teal[0] > gold[2] - gold[0] + 40


def test_night_is_darker_than_noon() -> None:
    for seed in range(4):
        night = ImageStat.Stat(_scene(render_png("a house at night", W, H, seed)).convert("L"))
        noon = ImageStat.Stat(_scene(render_png("a house at noon", W, H, seed)).convert("L"))
        assert night.mean[0] < noon.mean[0] - 50, seed
    dusk = ImageStat.Stat(_scene(render_png("a house at dusk", W, H, 0)).convert("L"))
    assert night.mean[0] < dusk.mean[0] < noon.mean[0]


def test_subjects_appear_and_a_removed_one_goes() -> None:
    plain = _scene(render_png("a hill at noon without a house", W, H, 4))
    house = _scene(render_png("a red house on a hill at noon", W, H, 4))
    assert _reds(house) > W * H * 0.005  # the red house
    assert _reds(plain) == 0
    removed = render_png("a red house on a hill at noon. Remove the house", W, H, 4)
    assert _same(_scene(removed), plain)


def test_the_words_are_read_in_order() -> None:
    plan = read_plan("a red lighthouse by the sea at dusk. Edit: make it night; make the sky teal")
    assert plan.time == "night"
    assert plan.colours == {"lighthouse": COLOURS["red"], "sky": COLOURS["teal"]}
    assert plan.tint is None
    assert plan.subjects == {"lighthouse": False, "water": False}
    trees = read_plan("golden trees in a forest, no moon", negative_prompt="houses")
    assert trees.subjects == {"tree": True}
    assert trees.colours == {"tree": COLOURS["gold"]} and trees.removed == {"moon", "house"}
    unknown = read_plan("a fox reading a newspaper")
    assert not unknown.named and unknown.time is None and unknown.tint is None


def test_unknown_words_get_a_seeded_layout() -> None:
    first = render_png("a fox reading a newspaper", W, H, 11)
    assert render_png("a fox reading a newspaper", W, H, 11) == first
    others = {render_png("a fox reading a newspaper", W, H, s) for s in range(12, 16)}
    assert first not in others and len(others) == 4


def test_a_foreign_image_with_our_metadata_but_bad_values_is_just_a_base(tmp_path: Path) -> None:
    forged = tmp_path / "forged.png"
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps({"layout": 1, "band": 10_000, "subjects": {}}))
    Image.new("RGB", (W, H), (220, 20, 20)).save(forged, pnginfo=info)
    data = render_png("a house", W, H, 1, references=[forged])
    r, g, b = ImageStat.Stat(_scene(data)).mean
    assert r > g + 60 and r > b + 60  # blended in like any other base


def test_a_1024_pixel_render_is_fast() -> None:
    """About 25-40 ms of CPU here; the bound leaves room for a slow, busy machine."""
    render_png("a lighthouse above the sea at dusk", 1024, 1024, 1)  # warm up fonts
    started = time.process_time()
    for seed in range(5):
        render_png("a red house in a forest by a lake at sunset", 1024, 1024, seed)
    assert (time.process_time() - started) / 5 < 0.15
