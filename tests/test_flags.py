"""Unit tests: /imagine text → prompt and parameters."""

from __future__ import annotations

import pytest

from bot import messages
from core.flags import (
    FlagError,
    FlagProblem,
    Params,
    check_supported,
    parse_command,
    size_for_ratio,
)


def test_prompt_and_flags() -> None:
    parsed = parse_command("a lighthouse at dusk --ar 3:2 --n 2 --seed 42")
    assert parsed.prompt == "a lighthouse at dusk"
    assert parsed.params == Params(aspect_ratio="3:2", n=2, seed=42)


def test_negative_prompt_takes_the_words_up_to_the_next_flag() -> None:
    parsed = parse_command("a garden --no people, cars --quality high --model gpt-image-1")
    assert parsed.params.negative_prompt == "people, cars"
    assert parsed.params.quality == "high"
    assert parsed.params.model == "gpt-image-1"


def test_em_dash_from_slack_clients_counts_as_double_dash() -> None:
    assert parse_command("a fox —ar 16:9").params.aspect_ratio == "16:9"


def test_ratio_is_reduced_and_sized_exactly() -> None:
    params = parse_command("x --ar 6:4").params
    assert params.aspect_ratio == "3:2"
    width, height = params.size()
    assert width * 2 == height * 3
    assert 0.9e6 < width * height <= 1024 * 1024


def test_text_after_a_one_word_flag_stays_in_the_prompt() -> None:
    parsed = parse_command("a cat --ar 3:2 sleeping on a sofa")
    assert parsed.prompt == "a cat sleeping on a sofa"


@pytest.mark.parametrize(
    "text",
    [
        "x --n 0",
        "x --n 5",
        "x --ar 3",
        "x --ar 0:1",
        "x --ar 5:1",
        "x --seed 4294967296",
        "x --seed -3",
        "x --quality best",
        "x --model bad!name",
        "x --wat 1",
        "x --n",
        "--n 2",
    ],
)
def test_bad_input_raises_with_a_message(text: str) -> None:
    with pytest.raises(FlagError) as err:
        parse_command(text)
    assert str(err.value)
    worded = messages.flag_error(err.value)
    assert "Nothing was queued" in worded and err.value.problem.value not in worded


def test_size_for_ratio_keeps_the_ratio() -> None:
    for ratio in ("1:1", "3:2", "2:3", "16:9", "9:16", "4:1", "1:4", "7:5"):
        w, h = (int(x) for x in ratio.split(":"))
        width, height = size_for_ratio(ratio)
        assert width * h == height * w


def test_overlong_text_is_refused_with_the_limit() -> None:
    with pytest.raises(FlagError) as err:
        parse_command("a " * 1001)
    assert err.value.problem is FlagProblem.TOO_LONG and err.value.data["limit"] == 2000
    assert "2,000" in messages.flag_error(err.value)
    assert parse_command("a " * 999).prompt


@pytest.mark.parametrize(
    ("text", "problem", "flag", "value", "says"),
    [
        ("x --wat 1", FlagProblem.UNKNOWN_FLAG, "wat", None, "`--wat` is not a flag I know"),
        ("x --n", FlagProblem.NEEDS_VALUE, "n", None, "`--n` needs a value"),
        ("x --ar 3", FlagProblem.BAD_RATIO, "ar", "3", "`--ar 3` is not an aspect ratio"),
        ("x --ar 0:1", FlagProblem.ZERO_SIDE, "ar", "0:1", "`--ar 0:1` has a zero side"),
        ("x --ar 5:1", FlagProblem.TOO_WIDE, "ar", "5:1", "`--ar 5:1` is too wide"),
        ("x --ar 1:5", FlagProblem.TOO_TALL, "ar", "1:5", "`--ar 1:5` is too tall"),
        ("x --n 5", FlagProblem.OUT_OF_RANGE, "n", "5", "Use `--n` with 1, 2, 3 or 4."),
        ("x --seed -3", FlagProblem.OUT_OF_RANGE, "seed", "-3", "from 0 to 4294967295"),
        ("x --q best", FlagProblem.BAD_QUALITY, "quality", "best", "low, medium or high"),
        ("x --model a!b", FlagProblem.BAD_MODEL, "model", "a!b", "`--model a!b` is not"),
        ("--n 2", FlagProblem.NO_PROMPT, None, None, "Tell me what to draw"),
    ],
)
def test_problems_are_codes_with_data_and_bot_words_them(
    text: str, problem: FlagProblem, flag: str | None, value: str | None, says: str
) -> None:
    with pytest.raises(FlagError) as err:
        parse_command(text)
    assert (err.value.problem, err.value.flag, err.value.value) == (problem, flag, value)
    assert "`" not in str(err.value) and "*" not in str(err.value)
    assert says in messages.flag_error(err.value)


def test_unsupported_n_names_the_provider_and_the_choices() -> None:
    with pytest.raises(FlagError) as err:
        check_supported(Params(n=3), (1, 2), "Tiny <Provider>")
    assert err.value.problem is FlagProblem.N_NOT_SUPPORTED
    assert err.value.data == {"allowed": (1, 2), "provider": "Tiny <Provider>"}
    worded = messages.flag_error(err.value, in_thread=True)
    assert "Tiny &lt;Provider&gt; makes 1 or 2 images at a time. Use `--n 1`, `--n 2`." in worded
    assert "/imagine help" not in worded


def test_typed_values_cannot_break_out_of_their_code_span() -> None:
    with pytest.raises(FlagError) as err:
        parse_command("x --ar `<!channel>` *bold*")
    worded = messages.flag_error(err.value)
    assert "<!channel>" not in worded and "&lt;!channel&gt;" in worded
    quoted = worded.split(" is not an aspect ratio")[0].removeprefix(":warning: ")
    assert quoted.count("`") == 2 and quoted.startswith("`") and quoted.endswith("`")


def test_params_text_names_every_set_flag() -> None:
    params = Params("3:2", 2, 42, "people", "high", "gpt-image-1")
    assert messages.params_text(params) == (
        "3:2 · 2 images · seed 42 · quality high · model gpt-image-1 · no people"
    )
    assert messages.params_text(Params(seed=0)) == "1:1 · 1 image · seed 0"
