"""The provider request of a job, built from its stored rows."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from core.db.jobs import Job
from core.db.refinement import StoredImage
from core.providers.base import GenerationRequest, ImageInput
from core.providers.results import missing_input
from core.refinement import size_mask
from core.store import ImageStore


async def build_request(
    job: Job, inputs: Sequence[StoredImage], store: ImageStore, model: str | None
) -> GenerationRequest:
    """The GenerationRequest of `job`: its prompt (with the refinement chain), what the
    person typed (the refining reply, else the prompt), parameters,
    `model`, and the input images in order (base first, then references). The mask is
    resized to the base image (or the requested size, in pixels) when the base changed since
    it was posted; the resized mask is written to `store`. Input files are fetched to this
    machine (`store.local_path`) so providers read local files. Raises ProviderError
    (INVALID_REQUEST) when an input is gone from the store."""
    references = tuple(
        [
            ImageInput(await _local(store, i.path, i.role), i.mime)
            for i in inputs
            if i.role in ("base", "reference")
        ]
    )
    mask = None
    ask = job.ask
    params = ask.params
    assert params.seed is not None  # stored with every generation (a NOT NULL column)
    own = params.size()  # what the row's width and height were stored from
    base = next((i for i in inputs if i.role == "base"), None)
    base_size = (base.width, base.height) if base else None
    size = base_size or own
    for item in inputs:
        if item.role != "mask":
            continue
        path = item.path
        if (item.width, item.height) != size:
            data = await asyncio.to_thread((await _local(store, path, "mask")).read_bytes)
            prepared = await size_mask(data, item.label, base=base_size, own=own)
            path = (await store.put(prepared.data)).path
        mask = ImageInput(await _local(store, path, "mask"), "image/png")
    return GenerationRequest(
        prompt=ask.provider_prompt or ask.prompt,
        width=own[0],
        height=own[1],
        aspect_ratio=params.aspect_ratio,
        n=params.n,
        seed=params.seed,
        negative_prompt=params.negative_prompt,
        quality=params.quality,
        model=model,
        references=references,
        mask=mask,
        typed_prompt=ask.instruction or ask.prompt,
    )


async def _local(store: ImageStore, path: Path | str, role: str) -> Path:
    """The input file at `path` on this machine. Raises ProviderError (INVALID_REQUEST)."""
    try:
        return await store.local_path(path)
    except FileNotFoundError as exc:
        raise missing_input(role, path, exc) from exc
