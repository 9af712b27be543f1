"""The image store: files on disk, content-addressed by sha256.

`put` writes bytes once under `<root>/<aa>/<sha256>.<ext>` (atomic rename), and
reads size and type with Pillow in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MIME_BY_FORMAT = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
EXT_BY_MIME = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class NotAnImage(ValueError):
    """The bytes are not an image Pillow can read (type is judged by content, not name)."""


@dataclass(frozen=True)
class StoredBlob:
    """An image in the store: sha256 (hex), path, size in pixels, MIME type, length in bytes."""

    sha256: str
    path: Path
    width: int
    height: int
    mime: str
    bytes: int


def inspect_image(data: bytes) -> tuple[int, int, str]:
    """(width, height, mime) of encoded image bytes. Raises NotAnImage. Blocking."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
    except Exception as err:
        raise NotAnImage("the file is not a readable image") from err
    if fmt not in MIME_BY_FORMAT:
        raise NotAnImage(f"{fmt or 'this'} images are not supported; use PNG, JPEG, WebP or GIF")
    return width, height, MIME_BY_FORMAT[fmt]


class ImageStore:
    """Content-addressed image files below `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    async def put(self, data: bytes) -> StoredBlob:
        """Store `data` (encoded image bytes) and describe it. Raises NotAnImage."""
        return await asyncio.to_thread(self._put, data)

    def _put(self, data: bytes) -> StoredBlob:
        width, height, mime = inspect_image(data)
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / digest[:2] / f"{digest}.{EXT_BY_MIME[mime]}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return StoredBlob(digest, path, width, height, mime, len(data))

    async def read(self, path: Path | str) -> bytes:
        """The bytes of a stored file."""
        return await asyncio.to_thread(Path(path).read_bytes)
