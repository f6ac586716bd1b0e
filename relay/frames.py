"""Parsing and checking the frames a remote app sends (PROTOCOL.md section 1)."""

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from relay.errors import BadMessage

MAX_MESSAGE_CHARS = 2000
MAX_NAME_CHARS = 255
MAX_RESULT_FILES = 20
# type/subtype with optional parameters ("text/plain; charset=utf-8"); no line breaks (header injection).
CONTENT_TYPE = re.compile(
    r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*"
    r"""(?:[ \t]*;[ \t]*[A-Za-z0-9][\w.+-]*=(?:[\w.+-]+|"[^"\\\r\n]*"))*"""
)


def parse(text: str | None, data: bytes | None) -> dict[str, Any]:
    if text is None:
        raise BadMessage("Binary frames are not part of the protocol: send JSON text frames.")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise BadMessage("The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise BadMessage("A frame must be a JSON object.")
    if not isinstance(frame.get("type"), str):
        raise BadMessage('A frame needs a string "type".')
    # A raw WebSocket text frame is valid UTF-8 and JSON forbids raw control characters in strings, so a
    # NUL or a lone surrogate can only come from a \u escape: look for them only when there is one.
    if "\\u" in text and not _storable(frame):
        # NUL cannot be stored in PostgreSQL text, nor a lone surrogate in UTF-8.
        raise BadMessage("Strings may not contain NUL characters or unpaired surrogates.")
    return frame


def _storable(value: Any) -> bool:
    """No string in the parsed frame (keys included) holds a NUL or an unpaired surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _str(frame: dict[str, Any], key: str, *, required: bool = True, max_len: int | None = None) -> str | None:
    value = frame.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadMessage(f'"{key}" must be a string.')
    if max_len is not None and len(value) > max_len:
        raise BadMessage(f'"{key}" is longer than {max_len} characters.')
    return value


@dataclass
class Register:
    space: str
    token: str
    client: dict[str, Any]


def register(frame: dict[str, Any]) -> Register:
    if frame.get("type") != "register":
        raise BadMessage('The first frame must be {"type": "register", ...}.')
    space = _str(frame, "space", max_len=100)
    token = _str(frame, "token", max_len=200)
    client = frame.get("client") or {}
    if not isinstance(client, dict):
        raise BadMessage('"client" must be an object.')
    safe_client = {k: str(v)[:100] for k, v in list(client.items())[:10] if isinstance(k, str)}
    return Register(space=space or "", token=token or "", client=safe_client)


def request_id(frame: dict[str, Any]) -> str:
    return _str(frame, "id", max_len=64) or ""


def progress(frame: dict[str, Any]) -> tuple[float | None, str | None]:
    value = frame.get("progress")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise BadMessage('"progress" must be a number in [0, 1] or null.')
        if not 0 <= value <= 1:
            raise BadMessage('"progress" must be a number in [0, 1] or null.')
        value = float(value)
    message = _str(frame, "message", required=False, max_len=MAX_MESSAGE_CHARS)
    return value, message


def partial(frame: dict[str, Any]) -> str:
    return _str(frame, "text") or ""


def error_message(frame: dict[str, Any]) -> str:
    message = frame.get("message")
    if message is None:
        return "The app reported an error."
    if not isinstance(message, str):
        raise BadMessage('"message" must be a string.')
    return message[:MAX_MESSAGE_CHARS]


@dataclass
class ResultFile:
    name: str
    content_type: str
    data: bytes


def result(frame: dict[str, Any]) -> tuple[str | None, list[ResultFile]]:
    outputs = frame.get("outputs", {})
    if outputs is None:
        outputs = {}
    if not isinstance(outputs, dict):
        raise BadMessage('"outputs" must be an object.')
    text = _str(outputs, "text", required=False)
    raw_files = outputs.get("files") or []
    if not isinstance(raw_files, list):
        raise BadMessage('"outputs.files" must be a list.')
    if len(raw_files) > MAX_RESULT_FILES:
        raise BadMessage(f"At most {MAX_RESULT_FILES} result files.")
    files = []
    for entry in raw_files:
        if not isinstance(entry, dict):
            raise BadMessage("Each result file must be an object.")
        name = _str(entry, "name", max_len=MAX_NAME_CHARS) or "file"
        content_type = _str(entry, "content_type", required=False, max_len=255) or "application/octet-stream"
        if not CONTENT_TYPE.fullmatch(content_type):
            raise BadMessage(f'"content_type" of file "{name}" is not a media type like "image/png".')
        data = _str(entry, "data") or ""
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadMessage(f'"data" of file "{name}" is not valid base64.') from None
        files.append(ResultFile(name=name, content_type=content_type, data=raw))
    return text, files
