"""core.images: reference checks and mask preparation, judged by content (Pillow in memory)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.messages import image_rejected
from core.images import (
    LIMITS,
    MB,
    CheckedImage,
    ImageLimits,
    ImageRejected,
    check_reference,
    is_mask_request,
    limits_for,
    prepare_mask,
)

LOGIN_PAGE = b"""

<!DOCTYPE html>
<html lang="en-US"><head><title>Slack</title></head><body>Sign in to Slack</body></html>
"""


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def solid(fmt: str, size: tuple[int, int] = (16, 12), mode: str = "RGB") -> bytes:
    color = (200, 30, 30, 255)[: len(mode)] if mode in ("RGB", "RGBA") else 128
    return encode(Image.new(mode, size, color), fmt)


def rejection(data: bytes, name: str, limits: ImageLimits | str = "openai") -> str:
    lim = limits_for(limits) if isinstance(limits, str) else limits
    with pytest.raises(ImageRejected) as info:
        check_reference(data, name, lim)
    message = image_rejected(info.value)
    assert f"`{name}`" in message, message  # names the file
    assert "\n" not in message  # one line
    return message


# -- limits ----------------------------------------------------------------------------


def test_limits_per_provider() -> None:
    assert limits_for("openai").max_bytes == 50 * MB
    assert limits_for("openai").mask_max_bytes == 4 * MB
    assert limits_for("toapis").max_bytes == 10 * MB
    assert limits_for("toapis").mask_max_bytes == 4 * MB
    assert limits_for("local").max_bytes == 20 * MB
    assert "image/gif" in limits_for("toapis").mimes
    assert "image/gif" not in limits_for("openai").mimes
    assert limits_for(" OpenAI ") is LIMITS["openai"]
    with pytest.raises(KeyError, match="openai"):
        limits_for("midjourney")


# -- accepted references ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
@pytest.mark.parametrize("provider", ["local", "openai", "toapis"])
def test_accepts_png_jpeg_webp(fmt: str, mime: str, provider: str) -> None:
    data = solid(fmt, (20, 10))
    # The name is irrelevant: content decides.
    checked = check_reference(data, "photo.bin", limits_for(provider))
    assert checked == CheckedImage(mime=mime, width=20, height=10, bytes=len(data))


def test_gif_accepted_for_toapis_but_not_openai() -> None:
    gif = solid("GIF", mode="RGB")
    assert check_reference(gif, "loop.gif", limits_for("toapis")).mime == "image/gif"
    message = rejection(gif, "loop.gif", "openai")
    assert "GIF" in message and "PNG, JPEG or WebP" in message


def test_gif_renamed_png_is_judged_by_content() -> None:
    message = rejection(solid("GIF", mode="RGB"), "cat.png", "local")
    assert "is a GIF" in message and "Post a PNG, JPEG or WebP image instead" in message


def test_animated_image_refused() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    message = rejection(data, "anim.gif", "toapis")
    assert "animated" in message and "still" in message


# -- refused references ----------------------------------------------------------------


def test_login_page_refused_with_what_to_do() -> None:
    message = rejection(LOGIN_PAGE, "ref.png")
    assert "login page" in message
    assert "files:read" in message and "member of this channel" in message
    assert rejection(b"<html><body>x</body></html>", "a.png").startswith("I couldn't download")


def test_too_large_says_size_and_limit() -> None:
    small = ImageLimits(max_bytes=2 * MB, mimes=frozenset({"image/png"}), mask_max_bytes=MB)
    data = solid("PNG") + b"\0" * (3 * MB)  # trailing bytes: still a PNG, but 3 MB
    message = rejection(data, "huge.png", small)
    assert "3.0 MB" in message and "2 MB limit" in message and "smaller" in message


def test_fifty_mb_refused_for_toapis() -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(50 * MB)
    message = rejection(data, "big.png", "toapis")
    assert "50 MB" in message and "10 MB limit" in message


def test_pdf_renamed_png() -> None:
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"
    message = rejection(pdf, "design.png", "openai")
    assert "PDF document" in message and "PNG, JPEG or WebP" in message


def test_zip_and_text_named() -> None:
    zipped = b"PK\x03\x04" + bytes(40)
    assert "ZIP" in rejection(zipped, "brief.png")
    assert "text file" in rejection(b"just some notes\nline two\n", "notes.png")


def test_unrecognisable_bytes() -> None:
    message = rejection(bytes(range(256)) * 4, "noise.png", "toapis")
    assert "isn't an image I can read" in message
    assert "PNG, JPEG, WebP or GIF" in message


def test_other_image_formats_named() -> None:
    assert "a BMP image" in rejection(solid("BMP"), "scan.png")


def test_truncated_png_refused() -> None:
    message = rejection(solid("PNG", (64, 64))[:60], "cut.png")
    assert "damaged or incomplete PNG" in message and "Post a PNG" in message


def test_empty_file() -> None:
    assert "empty" in rejection(b"", "nothing.png")


def test_name_is_sanitised_for_mrkdwn() -> None:
    with pytest.raises(ImageRejected) as info:
        check_reference(b"%PDF-1.4", "we`ird\nname.png", limits_for("local"))
    assert "`we'ird name.png`" in image_rejected(info.value)


# -- mask requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "filename", "expected"),
    [
        ("use this as a mask", "paint.png", True),
        ("MASK: the sky", "paint.png", True),
        ("Mask.", "x.jpg", True),
        ("unmask the face", "paint.png", False),
        ("masked layer", "paint.png", False),
        ("", "mask.png", True),
        ("", "Mask_sky.PNG", True),
        ("", "mask.jpg", False),
        ("", "my-mask.png", False),
        ("make it blue", "ref.png", False),
    ],
)
def test_is_mask_request(text: str, filename: str, expected: bool) -> None:
    assert is_mask_request(text, filename) is expected


# -- masks -----------------------------------------------------------------------------


def mask_png(
    size: tuple[int, int], hole: tuple[int, int, int, int] | None, *, mode: str = "RGBA"
) -> bytes:
    """An opaque image with a transparent (alpha 0) box ``hole`` (left, top, right, bottom)."""
    img = Image.new("RGBA", size, (255, 255, 255, 255))
    if hole is not None:
        img.paste((0, 0, 0, 0), hole)
    if mode == "LA":
        img = img.convert("LA")
    return encode(img, "PNG")


def alpha_of(prepared_data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(prepared_data))
    assert img.format == "PNG" and img.mode == "RGBA"
    return img.getchannel("A")


def mask_rejection(data: bytes, name: str, base: tuple[int, int] = (32, 32)) -> str:
    with pytest.raises(ImageRejected) as info:
        prepare_mask(data, name, base)
    message = image_rejected(info.value)
    assert f"`{name}`" in message and "\n" not in message
    return message


def test_mask_same_size_binary_alpha() -> None:
    img = Image.new("RGBA", (32, 32), (10, 20, 30, 255))
    img.paste((0, 0, 0, 0), (0, 0, 16, 32))  # left half transparent
    img.putpixel((20, 5), (9, 9, 9, 100))  # semi-transparent: below 128, repaint
    img.putpixel((21, 5), (9, 9, 9, 200))  # mostly opaque: keep
    prepared = prepare_mask(encode(img, "PNG"), "mask.png", (32, 32))
    assert (prepared.width, prepared.height, prepared.scaled_from) == (32, 32, None)
    alpha = alpha_of(prepared.data)
    assert alpha.size == (32, 32)
    hist = alpha.histogram()
    assert hist[0] + hist[255] == 32 * 32  # binary
    assert hist[0] == 16 * 32 + 1
    assert alpha.getpixel((20, 5)) == 0 and alpha.getpixel((21, 5)) == 255


def test_mask_scaled_to_base_with_hard_edges() -> None:
    data = mask_png((64, 32), (0, 0, 32, 32))  # left half transparent
    prepared = prepare_mask(data, "mask.png", (128, 128))
    assert prepared.scaled_from == (64, 32)
    assert (prepared.width, prepared.height) == (128, 128)
    alpha = alpha_of(prepared.data)
    assert alpha.size == (128, 128)
    hist = alpha.histogram()
    assert hist[0] + hist[255] == 128 * 128 and hist[0] == 64 * 128
    assert alpha.getpixel((63, 100)) == 0 and alpha.getpixel((64, 100)) == 255


def test_mask_la_and_palette_transparency_accepted() -> None:
    la = prepare_mask(mask_png((8, 8), (0, 0, 4, 8), mode="LA"), "m.png", (8, 8))
    assert alpha_of(la.data).histogram()[0] == 32
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 255, 255])
    pal.paste(0, (0, 0, 8, 2))
    prepared = prepare_mask(encode(pal, "PNG", transparency=0), "m.png", (8, 8))
    assert alpha_of(prepared.data).histogram()[0] == 16


def test_mask_without_alpha_refused() -> None:
    message = mask_rejection(solid("PNG", (32, 32), mode="RGB"), "mask.png")
    assert "no transparency" in message
    assert "Erase the area to repaint so it is transparent, and export as PNG" in message


def test_mask_fully_opaque_refused() -> None:
    message = mask_rejection(mask_png((32, 32), None), "mask.png")
    assert "none of its pixels is transparent" in message and "export as PNG" in message


def test_mask_fully_transparent_refused() -> None:
    message = mask_rejection(mask_png((32, 32), (0, 0, 32, 32)), "mask.png")
    assert "every pixel is transparent" in message and "nothing" in message


def test_mask_must_be_png_by_content() -> None:
    jpeg = solid("JPEG", (32, 32))
    assert "it is a JPEG image" in mask_rejection(jpeg, "mask.png")
    assert "PDF document" in mask_rejection(b"%PDF-1.5 stuff", "mask.png")
    assert "login page" in mask_rejection(LOGIN_PAGE, "mask.png")


def test_mask_hole_lost_when_scaled_down_refused() -> None:
    data = mask_png((400, 400), (0, 0, 1, 1))  # one transparent pixel
    assert "disappears" in mask_rejection(data, "mask.png", (4, 4))


def test_mask_bad_base_size() -> None:
    with pytest.raises(ValueError, match="base_size"):
        prepare_mask(mask_png((8, 8), (0, 0, 4, 4)), "mask.png", (0, 8))
