"""The mock app's command line and its pretend model, without a hub."""

import asyncio
import random
from typing import Any

import pytest

from relay.client import Request
from relay.client.__main__ import main, pairs
from relay.client.mock import answer, make_handler, parse_delay


def test_it_pairs_spaces_and_tokens_in_order() -> None:
    assert pairs(["A", "B"], ["ta", "tb"], None) == [("A", "ta"), ("B", "tb")]
    assert pairs(["A"], [], "from-env") == [("A", "from-env")]
    assert pairs(["A"], ["given"], "from-env") == [("A", "given")]
    with pytest.raises(ValueError, match="or set SPACEHUB_TOKEN"):
        pairs(["A"], [], None)
    with pytest.raises(ValueError, match="2 --space but 1 --token"):
        pairs(["A", "B"], ["ta"], "from-env")


def test_a_wrong_command_line_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACEHUB_TOKEN", raising=False)
    for argv in (["--space", "A"], ["--space", "A", "--token", "t", "--delay", "soon"], ["--token", "t"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "give one token per space" in err and "A delay is SECONDS or MIN-MAX" in err


def test_a_bad_hub_url_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--hub", "hub.example", "--space", "A", "--token", "t"])
    assert "The hub URL must look like https://hub.example" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "bounds"), [("0", (0.0, 0.0)), ("2", (2.0, 2.0)), ("1-5", (1.0, 5.0))])
def test_it_reads_a_delay_or_a_range(text: str, bounds: tuple[float, float]) -> None:
    assert parse_delay(text) == bounds


@pytest.mark.parametrize("text", ["", "soon", "5-1", "-1"])
def test_it_refuses_a_bad_delay(text: str) -> None:
    with pytest.raises(ValueError):
        parse_delay(text)


async def test_the_mock_model_reports_progress_and_streams_its_answer_word_by_word() -> None:
    sent: list[dict[str, Any]] = []

    async def send(frame: dict[str, Any]) -> None:
        sent.append(frame)

    request = Request({"id": "r", "inputs": {"prompt": "a poem about Python"}}, space="Echo", hub="http://h", send=send)
    result = await make_handler((0.2, 0.2), random.Random(1))(request)
    await asyncio.sleep(0.05)

    assert result == {"text": 'You said: "a poem about Python".'}
    progress = [f["progress"] for f in sent if f["type"] == "progress"]
    assert progress == sorted(progress) and progress[0] == 0.0 and progress[-1] == 1.0
    partials = [f["text"] for f in sent if f["type"] == "partial"]
    assert "".join(partials) == result["text"] and len(partials) > 1


def test_the_mock_answer_describes_files() -> None:
    assert answer(None, []) == "You sent no prompt."
    assert answer("x", ["audio a.wav (audio/wav, 3 bytes received)"]) == (
        'You said: "x". I received audio a.wav (audio/wav, 3 bytes received).'
    )
