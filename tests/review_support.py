"""Shared set-up of the team review tests: a workspace with an admin (Olive, a workspace
admin per users.info), reviewers (Carol in person, Dave through the @design-team group),
a gallery channel, and helpers to post an image and find its result message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.emulator import Message
from core.models import GenerationRow, GenerationState
from tests.harness import ALICE, BOB, CHANNEL, Harness, buttons

OLIVE = "U0OLIVE"  # workspace admin
CAROL = "U0CAROL"  # reviewer in person
DAVE = "U0DAVE"  # reviewer through @design-team
GROUP = "S0DESIGN"
GALLERY = "C0GALLERY"


async def review_bot(tmp: Path, **settings: Any) -> Harness:
    """A started bot with the review cast in the stand-in."""
    harness = Harness(tmp, local_render_seconds=0.1, **settings)
    emu = harness.emulator
    emu.add_user(OLIVE, "olive").is_admin = True
    emu.add_user(CAROL, "carol")
    emu.add_user(DAVE, "dave")
    for user in (OLIVE, CAROL, DAVE):
        emu.ws.channels[CHANNEL].members.add(user)
    emu.add_usergroup(GROUP, "design-team", [DAVE, BOB])
    emu.add_channel(GALLERY, "design-gallery", members=[ALICE, OLIVE])
    return await harness.start()


def set_command(harness: Harness, *, reviewers: str = "", rest: str = "") -> str:
    """`review set …` text as Slack sends it (escaped mentions)."""
    emu = harness.emulator
    parts = ["review set"]
    if reviewers:
        parts.append(f"--reviewers {reviewers}")
    if rest:
        parts.append(rest)
    return (
        " ".join(parts)
        .replace("@carol", emu.mention_user(CAROL))
        .replace("@design-team", emu.mention_group(GROUP))
        .replace("#design-gallery", emu.mention_channel(GALLERY))
    )


async def posted(
    harness: Harness, prompt: str = "a lighthouse", user: str = ALICE
) -> GenerationRow:
    """Ask for an image and wait until its result is in the thread."""
    before = len(await harness.generations())
    await harness.imagine(prompt, user=user)
    rows = await harness.wait_generations(before + 1)
    return await harness.wait_state(rows[before].id, GenerationState.POSTED)


async def result_of(harness: Harness, generation_id: int) -> Message:
    """The result message (the one with buttons) of a generation."""
    thread = harness.thread(await harness.thread_of(generation_id))
    return next(m for m in reversed(thread) if buttons(m))
