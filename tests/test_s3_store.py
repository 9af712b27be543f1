"""The image store on S3 (IMAGE_STORE_URL, issue 14) against a real S3 protocol server on
loopback: moto's server mode (`ThreadedMotoServer`), spoken to by obstore over HTTP with
AWS signatures, not a mock. Each store has its own cache folder, as two machines would.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import update

from core import privacy
from core.checks import check_image_store
from core.config import load_settings
from core.models import GenerationRow, GenerationState, db_now
from core.providers.toapis import ToAPIsProvider
from core.schedule import PollSchedule
from core.store import NotAnImage, S3ImageStore, open_store
from tests.conftest import TOAPIS_KEY
from tests.fakes import png_bytes
from tests.fakes.toapis_server import FakeToAPIs, TaskStep
from tests.harness import BOB, CHANNEL, Harness

BUCKET, PREFIX = "imagine-images", "team-a/images"
URL = f"s3://{BUCKET}/{PREFIX}"
FAST = PollSchedule(first=0.05, interval=0.05, factor=1.0, cap=0.1, jitter=0.1)


@dataclass
class S3Server:
    """moto's S3 server on a free loopback port, with bucket BUCKET; `objects()` lists what
    the bucket holds ({key: bytes}), read with boto3 (an independent S3 client)."""

    endpoint: str
    client: Any

    def objects(self) -> dict[str, bytes]:
        listed = self.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {
            o["Key"]: self.client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for o in listed
        }


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets per process: start each test from none
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield S3Server(endpoint, client)
    finally:
        server.stop()


def _store(s3: S3Server, cache: Path) -> S3ImageStore:
    store = open_store(
        load_settings(image_store_url=URL, s3_endpoint_url=s3.endpoint, image_store_dir=cache)
    )
    assert isinstance(store, S3ImageStore)
    return store


async def test_put_then_get_from_another_machine(tmp_path: Path, s3: S3Server) -> None:
    data = png_bytes(12, 8)
    digest = hashlib.sha256(data).hexdigest()
    blob = await _store(s3, tmp_path / "a").put(data)
    assert (blob.sha256, blob.width, blob.height, blob.mime) == (digest, 12, 8, "image/png")
    key = f"{PREFIX}/{digest[:2]}/{digest}.png"
    assert s3.objects() == {key: data}  # content-addressed key under the prefix
    assert s3.client.head_object(Bucket=BUCKET, Key=key)["ContentType"] == "image/png"

    other = _store(s3, tmp_path / "b")  # a machine whose cache is empty
    assert await other.read(blob.path) == data
    local = await other.local_path(blob.path)
    assert local == tmp_path / "b" / digest[:2] / f"{digest}.png" and local.read_bytes() == data


async def test_put_of_the_same_content_is_idempotent(tmp_path: Path, s3: S3Server) -> None:
    data = png_bytes(9, 9)
    first = await _store(s3, tmp_path / "a").put(data)
    second = await _store(s3, tmp_path / "b").put(data)  # object there already
    again = await _store(s3, tmp_path / "a").put(data)  # cache and object there already
    assert first.sha256 == second.sha256 == again.sha256
    assert first.path.name == second.path.name
    assert list(s3.objects().values()) == [data]
    with pytest.raises(NotAnImage):
        await _store(s3, tmp_path / "a").put(b"not an image")
    assert len(s3.objects()) == 1


async def test_missing_and_tampered_objects_are_errors(tmp_path: Path, s3: S3Server) -> None:
    store = _store(s3, tmp_path / "a")
    gone = tmp_path / "a" / "ab" / f"ab{'0' * 62}.png"
    with pytest.raises(FileNotFoundError):
        await store.read(gone)
    blob = await store.put(png_bytes(5, 5))
    key = f"{PREFIX}/{S3ImageStore.key(blob.path)}"
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=png_bytes(6, 6))  # not its hash
    with pytest.raises(OSError, match="do not match"):
        await _store(s3, tmp_path / "b").read(blob.path)
    await store.delete(blob.path)
    assert s3.objects() == {} and not blob.path.exists()
    with pytest.raises(FileNotFoundError):
        await _store(s3, tmp_path / "c").read(blob.path)


async def test_doctor_checks_the_bucket(tmp_path: Path, s3: S3Server) -> None:
    settings = load_settings(
        image_store_url=URL, s3_endpoint_url=s3.endpoint, image_store_dir=tmp_path
    )
    ok = await check_image_store(settings)
    assert ok.ok and URL in ok.detail
    assert s3.objects() == {}  # the probe object is deleted again
    missing = settings.model_copy(update={"image_store_url": "s3://no-such-bucket"})
    bad = await check_image_store(missing)
    assert not bad.ok and "no-such-bucket" in bad.detail and "IMAGE_STORE_URL" in bad.fix


def test_image_store_url_must_be_s3() -> None:
    from core.config import SettingsError

    with pytest.raises(SettingsError, match="IMAGE_STORE_URL: must be an object store URL"):
        load_settings(image_store_url="/var/images")
    with pytest.raises(SettingsError, match="S3_ENDPOINT_URL: must be an http"):
        load_settings(image_store_url=URL, s3_endpoint_url="minio:9000")


def _harness(tmp_path: Path, s3: S3Server, fake: FakeToAPIs, cache: Path) -> Harness:
    """A bot (not started) with the ToAPIs provider and the image store on S3."""
    provider = ToAPIsProvider(TOAPIS_KEY, fake.root_url, None, timeout=5)
    provider.poll_schedule = FAST
    return Harness(
        tmp_path, provider, image_store_url=URL, s3_endpoint_url=s3.endpoint,
        image_store_dir=cache,
    )  # fmt: skip


async def test_generation_and_refinement_with_the_store_on_s3(
    tmp_path: Path, s3: S3Server, toapis_fake: FakeToAPIs
) -> None:
    """/imagine with ToAPIs: the image goes to the bucket and reaches the Slack stand-in; then
    the cache is wiped (another machine) and a reply refines it: the base image is fetched
    from the bucket and uploaded to ToAPIs as the reference."""
    toapis_fake.task_script = [TaskStep("in_progress", 50), TaskStep("completed", 100)]
    cache = tmp_path / "cache"
    harness = _harness(tmp_path, s3, toapis_fake, cache)
    await harness.start()
    try:
        await harness.imagine("a lighthouse at dusk")
        [v1] = await harness.wait_generations(1)
        await harness.wait_state(v1.id, GenerationState.POSTED)
        image = toapis_fake.image
        digest = hashlib.sha256(image).hexdigest()
        assert s3.objects() == {f"{PREFIX}/{digest[:2]}/{digest}.png": image}
        thread_ts = await harness.thread_of(v1.id)
        [upload] = [m for m in harness.thread(thread_ts) if m.files]
        assert harness.emulator.file_bytes(upload.files[0].id) == image

        shutil.rmtree(cache)
        _ts, delivery = await harness.emulator.post_user_message(
            BOB, CHANNEL, "make it stormy", thread_ts=thread_ts
        )
        assert delivery is not None and delivery.status == 200
        rows = await harness.wait_generations(2)
        await harness.wait_state(rows[1].id, GenerationState.POSTED)
        [reference] = toapis_fake.calls("upload")
        assert reference.parts_named("file")[0].data == image
        assert (cache / digest[:2] / f"{digest}.png").read_bytes() == image

        # Retention removes the images from the bucket too (the store deletes them).
        assert harness.runtime is not None
        store = harness.runtime.store
        report = await privacy.sweep(harness.sm, 1, now=time.time() + 3 * 86400, store=store)
        assert report.images == 2 and s3.objects() == {}
    finally:
        await harness.close()


async def test_a_machine_without_the_image_uploads_it_from_the_bucket(
    tmp_path: Path, s3: S3Server, toapis_fake: FakeToAPIs
) -> None:
    """The image is stored, Slack refuses the upload (rate limited for 30 s), the process
    stops and its cache is wiped: the process that posts the result reads it from the
    bucket."""
    toapis_fake.task_script = [TaskStep("completed", 100)]
    cache = tmp_path / "cache"
    harness = _harness(tmp_path, s3, toapis_fake, cache)
    harness.emulator.fail_next(
        "files.getUploadURLExternal", "ratelimited", status=429, retry_after=30
    )
    await harness.start()
    try:
        await harness.imagine("a lighthouse at dusk")
        [v1] = await harness.wait_generations(1)
        await harness.wait_row(v1.id, lambda r: r.state == "completed" and r.attempts >= 1)
        await harness.stop()
        shutil.rmtree(cache)
        async with harness.sm.begin() as s:  # due now instead of after Retry-After
            await s.execute(
                update(GenerationRow)
                .where(GenerationRow.id == v1.id)
                .values(next_attempt_at=db_now())
            )
        await harness.start()
        await harness.wait_state(v1.id, GenerationState.POSTED)
        [upload] = [m for m in harness.thread(await harness.thread_of(v1.id)) if m.files]
        assert harness.emulator.file_bytes(upload.files[0].id) == toapis_fake.image
        assert [p.name for p in cache.rglob("*.png")] == [
            f"{hashlib.sha256(toapis_fake.image).hexdigest()}.png"
        ]
    finally:
        await harness.close()
