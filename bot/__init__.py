"""Slack adapter for slack-imagine (Bolt for Python, async)."""
