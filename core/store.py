"""The image store: files on disk or in an S3 bucket, content-addressed by sha256.

`put` writes bytes once under `<root>/<aa>/<sha256>.<ext>` (atomic rename), and
reads size and type with Pillow in a worker thread, never on the event loop.

With `IMAGE_STORE_URL=s3://bucket/prefix` (issue 14) the bucket holds every image under
`<prefix>/<aa>/<sha256>.<ext>` and the folder is this machine's cache: rows keep the file's
path as `put` returned it, and any machine finds the object again from the file's name (its
hash). Readers ask the store for the bytes (`read`) or for a file on this machine
(`local_path`), which downloads it on demand. S3 access goes through obstore
(https://developmentseed.org/obstore/), the `s3` extra.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from core.config import Settings, SettingsError

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
    """Content-addressed image files below `root` (IMAGE_STORE_DIR): the default store."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        """Where the images are kept, for logs and the doctor (no secrets)."""
        return str(self.root)

    async def put(self, data: bytes) -> StoredBlob:
        """Store `data` (encoded image bytes) and describe it. Raises NotAnImage."""
        return await asyncio.to_thread(self._put, data)

    def _put(self, data: bytes) -> StoredBlob:
        width, height, mime = inspect_image(data)
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / digest[:2] / f"{digest}.{EXT_BY_MIME[mime]}"
        _write_once(path, data)
        return StoredBlob(digest, path, width, height, mime, len(data))

    async def read(self, path: Path | str) -> bytes:
        """The bytes of a stored file. Raises OSError (FileNotFoundError when it is gone)."""
        return await asyncio.to_thread((await self.local_path(path)).read_bytes)

    async def local_path(self, path: Path | str) -> Path:
        """A file on this machine with the content of stored `path` (here: `path` itself).
        Raises FileNotFoundError when the image is gone from the store (not in a folder)."""
        return Path(path)

    async def delete(self, path: Path | str) -> None:
        """Remove a stored file (gone already is fine). Raises OSError."""
        await asyncio.to_thread(Path(path).unlink, missing_ok=True)


class S3ImageStore(ImageStore):
    """Images in an S3 (or compatible) bucket, `url` = s3://bucket/prefix, with `cache` as
    this machine's copy. `endpoint` is an S3-compatible server's URL (http:// allowed);
    credentials and region come from the AWS_* environment variables (obstore's S3Config).
    Raises SettingsError when obstore is not installed."""

    def __init__(self, url: str, cache: Path, endpoint: str | None = None) -> None:
        super().__init__(cache)
        try:
            from obstore.store import S3Store
        except ImportError as err:
            raise SettingsError(
                "IMAGE_STORE_URL needs the s3 extra: pip install 'slack-imagine[s3]'"
            ) from err
        options = {"endpoint": endpoint} if endpoint else {}
        allow_http = bool(endpoint and endpoint.startswith("http://"))
        self.url = url
        self._s3 = S3Store.from_url(url, client_options={"allow_http": allow_http}, **options)

    def describe(self) -> str:
        """The bucket URL and the cache folder."""
        return f"{self.url} (cache {self.root})"

    @staticmethod
    def key(path: Path | str) -> str:
        """The object key (below the prefix) of a stored file: `<aa>/<sha256>.<ext>`."""
        name = Path(path).name
        return f"{name[:2]}/{name}"

    async def put(self, data: bytes) -> StoredBlob:
        """Store `data` in the cache and in the bucket (once: an object that is there already
        is left alone). Raises NotAnImage, obstore errors (network, permission)."""
        import obstore
        from obstore.exceptions import AlreadyExistsError

        blob = await super().put(data)
        try:
            attributes = {"Content-Type": blob.mime}
            await obstore.put_async(
                self._s3, self.key(blob.path), data, mode="create", attributes=attributes
            )
        except AlreadyExistsError:
            pass  # content-addressed: the same bytes are there
        return blob

    async def local_path(self, path: Path | str) -> Path:
        """The cached file of `path`, downloaded from the bucket when this machine has none.
        Raises FileNotFoundError (no such object), OSError (its bytes do not match its
        hash), obstore errors (network, permission)."""
        import obstore

        key = self.key(path)
        local = self.root / key
        if await asyncio.to_thread(local.exists):
            return local
        data = bytes(await (await obstore.get_async(self._s3, key)).bytes_async())
        if hashlib.sha256(data).hexdigest() != local.stem:
            raise OSError(f"{self.url}/{key}: the object's bytes do not match its name")
        await asyncio.to_thread(_write_once, local, data)
        return local

    async def delete(self, path: Path | str) -> None:
        """Remove the object and the cached file (gone already is fine)."""
        import obstore

        await super().delete(self.root / self.key(path))
        await obstore.delete_async(self._s3, self.key(path))

    async def probe(self) -> None:
        """Write, then delete, a small object in the bucket (the doctor's check). Raises
        obstore errors (unreachable, no bucket, permission denied)."""
        import obstore

        await obstore.put_async(self._s3, ".doctor-check", b"ok")
        await obstore.delete_async(self._s3, ".doctor-check")


def open_store(settings: Settings) -> ImageStore:
    """The image store the settings name: S3 with IMAGE_STORE_URL (IMAGE_STORE_DIR as its
    cache), else the folder IMAGE_STORE_DIR. Raises SettingsError (obstore missing)."""
    if settings.image_store_url:
        return S3ImageStore(
            settings.image_store_url, settings.image_store_dir, settings.s3_endpoint_url
        )
    return ImageStore(settings.image_store_dir)


def _write_once(path: Path, data: bytes) -> None:
    """Write `data` at `path` unless a file is there (atomic rename). Blocking."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
