"""URL mapping, result encoding and frames as logged: no hub needed."""

import base64
import json
from pathlib import Path

import pytest

from relay.client import ResultTooLarge
from relay.client.wire import check_size, dumps, encode_outputs, error_text, file_url, summary, ws_url


@pytest.mark.parametrize(
    ("hub", "expected"),
    [
        ("https://hub.example", "wss://hub.example/ws/apps/"),
        ("https://hub.example/", "wss://hub.example/ws/apps/"),
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/apps/"),
        ("HTTP://Hub.Example:8080/", "ws://Hub.Example:8080/ws/apps/"),
        ("https://example.com/spacehub", "wss://example.com/spacehub/ws/apps/"),
        ("wss://hub.example/ws/apps/", "wss://hub.example/ws/apps/"),
        ("  https://hub.example?x=1  ", "wss://hub.example/ws/apps/"),
    ],
)
def test_it_maps_the_hub_url_to_the_apps_websocket(hub: str, expected: str) -> None:
    assert ws_url(hub) == expected


@pytest.mark.parametrize("hub", ["hub.example", "ftp://hub.example", "https://", ""])
def test_it_refuses_a_hub_url_without_http_scheme_or_host(hub: str) -> None:
    with pytest.raises(ValueError, match="hub URL must look like"):
        ws_url(hub)


def test_it_takes_file_urls_as_given_or_joins_them_to_the_hub() -> None:
    absolute = "http://127.0.0.1:8000/relay/files/abc/"
    assert file_url("http://127.0.0.1:8000", absolute) == absolute
    assert file_url("https://hub.example/", "/relay/files/abc/") == "https://hub.example/relay/files/abc/"
    assert file_url("wss://hub.example/ws/apps/", "/relay/files/x/") == "https://hub.example/relay/files/x/"
    with pytest.raises(ValueError):
        file_url("https://hub.example", "file:///etc/passwd")


def test_a_str_is_the_text_and_none_is_an_empty_result() -> None:
    assert encode_outputs("hello") == {"text": "hello"}
    assert encode_outputs(None) == {}
    assert encode_outputs({"text": "t"}) == {"text": "t"}


def test_it_encodes_files_in_base64_in_each_accepted_shape(tmp_path: Path) -> None:
    path = tmp_path / "plot.png"
    path.write_bytes(b"\x89PNG")

    outputs = encode_outputs(
        {
            "text": "see files",
            "files": [
                ("out.bin", b"\0\1\2", "application/x-thing"),
                ("notes.txt", "héllo"),
                {"name": "data.json", "data": bytearray(b"{}")},
                path,
            ],
        }
    )

    files = outputs["files"]
    assert [(f["name"], f["content_type"]) for f in files] == [
        ("out.bin", "application/x-thing"),
        ("notes.txt", "text/plain"),
        ("data.json", "application/json"),
        ("plot.png", "image/png"),
    ]
    assert [base64.b64decode(f["data"]) for f in files] == [b"\0\1\2", "héllo".encode(), b"{}", b"\x89PNG"]
    assert outputs["text"] == "see files"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "returns a str, a dict"),
        ({"txt": "typo"}, "only 'text' and 'files', not txt"),
        ({"text": 3}, "'text' must be a str"),
        ({"files": "a.png"}, "must be a list"),
        ({"files": [("a.png",)]}, "Each result file"),
        ({"files": [("", b"x")]}, "non-empty str name"),
        ({"files": [("a.png", 12)]}, "must be bytes"),
    ],
)
def test_it_explains_a_result_it_cannot_send(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        encode_outputs(value)


def test_it_refuses_a_frame_over_one_mib_before_the_hub_does() -> None:
    fits = {"type": "result", "id": "x", "outputs": encode_outputs({"files": [("a.bin", b"\0" * 700_000)]})}
    check_size(fits, dumps(fits))
    too_big = {"type": "result", "id": "x", "outputs": encode_outputs({"files": [("a.bin", b"\0" * 800_000)]})}
    with pytest.raises(ResultTooLarge, match="keep result files under about 700 KiB"):
        check_size(too_big, dumps(too_big))


def test_an_error_message_is_the_exception_text_or_its_name() -> None:
    assert error_text(RuntimeError("out of memory")) == "out of memory"
    assert error_text(KeyError()) == "KeyError"
    assert len(error_text(ValueError("x" * 5000))) == 2000


def test_the_verbose_log_hides_the_token_and_file_data() -> None:
    register = {"type": "register", "space": "Echo", "token": "sh_secret_token_value"}
    result = {"type": "result", "outputs": {"text": "y" * 500, "files": [{"name": "a", "data": "AAAA"}]}}

    shown = json.loads(summary(register))
    assert shown["token"] == "sh_sec…"
    text = summary(result)
    assert "<3 bytes>" in text and "(500 chars)" in text and "AAAA" not in text
