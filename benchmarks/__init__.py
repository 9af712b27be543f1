"""Benchmarks of issue 13 (speed under load): `python -m benchmarks.run [--quick] [--runs N]`.

Not tests (pytest collects only `tests/`): each module measures one row group of the
issue's table against the bot as a subprocess (`imagine-bot serve`, see
:mod:`benchmarks.probe`), driven over loopback by a separate load process
(:mod:`benchmarks.loadgen`) with the Slack stand-in (:mod:`bot.emulator`) and the fake
ToAPIs server (:mod:`tests.fakes.toapis_server`) in the runner's process. See README.md.
"""
