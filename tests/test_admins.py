"""Who counts as an admin: workspace admins and owners per Slack's users.info, plus the user
ids in IMAGINE_ADMINS; over loopback against the Slack stand-in."""

from __future__ import annotations

from pathlib import Path

from bot.admins import is_admin
from tests.harness import ALICE, BOB, Harness

CAROL = "U0CAROL"
OWEN = "U0OWEN"


async def test_workspace_admins_owners_and_imagine_admins(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, imagine_admins=f"{CAROL}, U0OTHER").start()
    try:
        emulator = harness.emulator
        emulator.add_user(CAROL, "carol")
        emulator.add_user(OWEN, "owen").is_owner = True
        emulator.ws.users[BOB].is_admin = True
        runtime, settings = harness.runtime, harness.settings
        assert runtime is not None and settings is not None
        publisher = runtime.publisher
        assert await is_admin(publisher, settings, BOB)  # workspace admin
        assert await is_admin(publisher, settings, OWEN)  # owner
        assert await is_admin(publisher, settings, CAROL)  # IMAGINE_ADMINS
        assert not await is_admin(publisher, settings, ALICE)
        assert not await is_admin(publisher, settings, "U0NOBODY")  # Slack: user_not_found
        # users.info is sent as form arguments (a read method), and not for IMAGINE_ADMINS.
        asked = [c.params.get("user") for c in emulator.calls_to("users.info")]
        assert asked == [BOB, OWEN, ALICE, "U0NOBODY"]
    finally:
        await harness.close()
