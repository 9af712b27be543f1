"""The result cache (issue 11), called once at submit time: a request identical to an
earlier completed one (provider, model, full prompt with the refinement chain, the text as
typed (the local renderer writes it on the image), size, `n`, seed, negative prompt,
quality and the sha256 of every input image) reuses its stored images instead of calling
the provider, when the provider is deterministic for us (it declares `honours_seed`: the
same seed gives the same images; the local renderer does, OpenAI's and ToAPIs' APIs take
no seed). The generation's cost is 0 and its result says so. `--fresh` (`Params.fresh`)
skips the lookup; its key is still remembered so later requests may reuse its images.
"""

from __future__ import annotations

import hashlib
import json

from core.db import jobs as jobs_db
from core.db import usage as usage_db
from core.db.jobs import Job
from core.jobs.context import JobContext
from core.providers.base import GenerationRequest, ImageInput

REUSED_NOTE = "Reused from an identical request: no new images were made, and it cost nothing."


async def _digest(ctx: JobContext, image: ImageInput) -> str:
    return hashlib.sha256(await ctx.store.read(image.path)).hexdigest()


async def cache_key(ctx: JobContext, job: Job, request: GenerationRequest) -> str:
    """sha256 of everything that decides the provider's images for this request."""
    data = {
        "provider": job.ask.provider,
        "model": request.model,
        "prompt": request.prompt,
        "typed_prompt": request.typed_prompt,  # the local renderer's caption
        "size": [request.width, request.height, request.aspect_ratio],
        "n": request.n,
        "seed": request.seed,
        "negative_prompt": request.negative_prompt,
        "quality": request.quality,
        "references": [await _digest(ctx, ref) for ref in request.references],
        "mask": await _digest(ctx, request.mask) if request.mask else None,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


async def reuse(ctx: JobContext, job: Job, request: GenerationRequest) -> bool:
    """Store the earlier identical result as this job's (cost 0) and return True, or
    return False when there is none, the provider is not deterministic, or `--fresh`.
    Raises LeaseLost (the result is written under the job's lease)."""
    if not ctx.provider.info.honours_seed:
        return False
    key = await cache_key(ctx, job, request)
    found = await usage_db.cache_lookup(ctx.sm, job.id, key, use=not job.ask.params.fresh)
    if found is None:
        return False
    await jobs_db.save_results(
        ctx.sm, job.id, ctx.owner, found[1], note=REUSED_NOTE, usage=None, cost_usd=0.0
    )
    return True
