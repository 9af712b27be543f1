"""The command line as a newcomer meets it: the offline demo and one-line setting errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bot.__main__ import main


def test_demo_runs_the_main_job_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_RENDER_SECONDS", "0.3")
    out = tmp_path / "out"
    code = main(
        ["demo", "a lighthouse at dusk --ar 3:2", "--reply", "make it stormy", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "@alice asked for:" in printed and "a lighthouse at dusk" in printed
    assert "[ Approve ]" in printed and "[ Regenerate ]" in printed
    assert "📎 v1-1.png" in printed and "from v1 image 1: _make it stormy_" in printed
    for version in (1, 2):
        image = Image.open(out / f"v{version}-1.png")
        assert image.format == "PNG" and image.size[0] * 2 == image.size[1] * 3


def test_demo_with_a_bad_flag_says_what_is_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "a cat --n 9", "--out", str(tmp_path)])
    assert code == 1
    assert "Use `--n` with 1, 2, 3 or 4" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        ({"PORT": "abc"}, ["demo", "x"], "PORT:"),
        ({"SLACK_BOT_TOKEN": "not-a-token"}, ["demo", "x"], "SLACK_BOT_TOKEN: "),
        ({}, ["serve"], "SLACK_BOT_TOKEN is required"),
    ],
)
def test_bad_settings_stop_with_one_line(
    tmp_path: Path, env: dict[str, str], args: list[str], says: str
) -> None:
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.stderr
    assert "not-a-token" not in result.stderr
