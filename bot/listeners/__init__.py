"""Bolt listeners by kind: commands, actions, events. Each module has `register(app, runtime)`."""
