"""Every user-facing sentence the bot says that is not part of a Block Kit builder.

`core` returns codes and data (error kinds, reasons, who/what); this module words them
for Slack (mrkdwn). Block Kit builders live in `bot/blocks.py`.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------
# Job engine: failures, waiting reasons, unreachable channels
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Sessions, refinement, history, actions
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Files and images: downloads, references, masks
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Requests and payloads: stale buttons, wrong conversation
# ---------------------------------------------------------------------------------------
