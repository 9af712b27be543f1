"""Unit tests: /imagine text → prompt and parameters."""

from __future__ import annotations

import pytest

from core.flags import FlagError, Params, parse_command, size_for_ratio


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


def test_size_for_ratio_keeps_the_ratio() -> None:
    for ratio in ("1:1", "3:2", "2:3", "16:9", "9:16", "4:1", "1:4", "7:5"):
        w, h = (int(x) for x in ratio.split(":"))
        width, height = size_for_ratio(ratio)
        assert width * h == height * w


def test_overlong_text_is_refused_with_the_limit() -> None:
    with pytest.raises(FlagError) as err:
        parse_command("a " * 1001)
    assert "2,000" in str(err.value)
    assert parse_command("a " * 999).prompt
