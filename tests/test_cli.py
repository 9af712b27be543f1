"""The command line as a newcomer meets it: the offline demo and one-line setting errors."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bot.__main__ import main
from core.config import database_url_problem


def test_demo_runs_the_main_job_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_RENDER_SECONDS", "0.3")
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("v3-1.png", "v1-image1.png", "notes.txt"):  # an earlier run's, and ours
        (out / stale).write_bytes(b"old")
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
    # The files on disk are the files in the transcript, and only this run's images.
    shown = set(re.findall(r"📎 (\S+)", printed))
    assert shown == {"v1-1.png", "v2-1.png"}
    assert {p.name for p in out.iterdir()} == shown | {"notes.txt"}


def test_demo_review_shows_the_review_flow_with_modal_and_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_RENDER_SECONDS", "0.3")
    code = main(["demo", "a lighthouse", "--review", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0
    # The settings modal, readable: its fields and buttons.
    assert "Modal “Review settings” (open for @olive)" in printed
    assert "Approvals needed: [ 1 ]" in printed and "[ Cancel ]  [ Save ]" in printed
    assert "• Reviewers: @carol" in printed and "Gallery channel: #design-gallery" in printed
    # The requester's own Approve is refused; the reviewer is called once in the thread.
    assert "don't let people approve their own images. It can be approved by @carol" in printed
    assert printed.count(":eyes: @carol: v1 is waiting for your review") == 1
    # Carol's Home tab before and after she approves from it.
    before, after = printed.split("──── @carol's Home tab, after ────")
    assert "Home tab of @carol" in before and "[ Approve ]  [ Request changes ]" in before
    assert "Nothing is waiting for your review." in after
    assert "approved by @carol · See it in the gallery ↗" in after
    assert "──── #design-gallery ────" in printed and "Versions: v1" in printed
    assert re.search(r"\*Approved by @carol\* \w{3} \d\d at \d\d:\d\d UTC", printed)
    assert (tmp_path / "v1-1.png").is_file()


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
        ({"SLACK_SIGNING_SECRET": "s"}, ["serve"], "SLACK_BOT_TOKEN is required"),
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


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The console script in a subprocess, with only `env` (and PATH, HOME) set."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


SLACK = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}


def test_a_missing_asyncpg_is_named_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The test extra installs asyncpg (for the PostgreSQL variants), so hide it here.
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "asyncpg" else real(name, *a)
    )
    said = database_url_problem("postgresql+asyncpg://me:hunter2@db/imagine")
    assert said == "the asyncpg driver is not installed: pip install 'slack-imagine[postgres]'"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite:///x.db", "needs the async driver aiosqlite: use sqlite+aiosqlite:///x.db"),
        ("postgresql://me:hunter2@db/x", "use postgresql+asyncpg://me:***@db/x"),
    ],
)
def test_database_url_without_an_async_driver(tmp_path: Path, url: str, says: str) -> None:
    result = run_cli(tmp_path, {**SLACK, "DATABASE_URL": url}, "serve")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "imagine-bot: configuration error: DATABASE_URL: "
    )
    assert says in lines[0]
    assert "hunter2" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no database file, no data folder


def test_every_bad_setting_is_reported_at_once(tmp_path: Path) -> None:
    result = run_cli(tmp_path, {"PORT": "abc", "SLACK_BOT_TOKEN": "nope"}, "serve")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 2, result.stderr
    assert lines[0].startswith("imagine-bot: configuration error: SLACK_BOT_TOKEN: must be")
    assert lines[1].startswith("imagine-bot: configuration error: PORT: ")
    missing = run_cli(tmp_path, {}, "serve").stderr.strip().splitlines()
    assert missing == [
        "imagine-bot: configuration error: SLACK_BOT_TOKEN is required but not set",
        "imagine-bot: configuration error: SLACK_SIGNING_SECRET is required but not set",
    ]


def test_serve_help_lists_the_settings(tmp_path: Path) -> None:
    from core.config import Settings

    result = run_cli(tmp_path, {}, "serve", "--help")
    assert result.returncode == 0
    for name in Settings.model_fields:
        assert f"  {name.upper()} " in result.stdout


def test_readme_links_stay_in_the_repository() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert "../" not in readme
    for target in re.findall(r"\]\(([^)#]+)", readme):
        if not target.startswith("https://"):
            assert (root / target).resolve().is_relative_to(root) and (root / target).exists()
    assert "manifest.json" in readme and "imagine-bot doctor" in readme


def test_worker_without_a_bot_token_says_so_in_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, {}, "worker")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "SLACK_BOT_TOKEN" in result.stderr
    assert "SLACK_SIGNING_SECRET" not in result.stderr  # a worker serves no HTTP
