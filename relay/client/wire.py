"""What travels on the wire: the hub's URLs, result encoding, frame size, frames as logged."""

import base64
import json
import mimetypes
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from relay.client.errors import ResultTooLarge

APPS_PATH = "ws/apps/"
# The hub accepts frames up to 1 MiB (daphne --websocket-max-message-size); a result with files
# travels base64-encoded in one frame.
MAX_FRAME_BYTES = 1024 * 1024
MAX_MESSAGE_CHARS = 2000  # the hub keeps this much of an error message
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _split_hub(hub: str) -> tuple[str, str, str]:
    parts = urlsplit(hub.strip())
    scheme = parts.scheme.lower()
    if scheme not in _WS_SCHEMES or not parts.netloc:
        raise ValueError(f'The hub URL must look like https://hub.example or http://127.0.0.1:8000, not "{hub}".')
    path = parts.path.rstrip("/")
    if path.endswith("/" + APPS_PATH.rstrip("/")):
        path = path[: -len(APPS_PATH)]
    return scheme, parts.netloc, path


def ws_url(hub: str) -> str:
    """http(s)://host[/prefix] -> ws(s)://host[/prefix]/ws/apps/ (a ws(s):// URL is accepted too)."""
    scheme, netloc, path = _split_hub(hub)
    return urlunsplit((_WS_SCHEMES[scheme], netloc, f"{path}/{APPS_PATH}", "", ""))


def http_url(hub: str) -> str:
    """The hub's web address (without a trailing slash), for input file URLs that are relative."""
    scheme, netloc, path = _split_hub(hub)
    return urlunsplit((_HTTP_SCHEMES[scheme], netloc, path, "", ""))


def file_url(hub: str, url: str) -> str:
    """An input file's download URL: absolute on the hub as sent, or joined to the hub's address."""
    absolute = urljoin(http_url(hub) + "/", url)
    if urlsplit(absolute).scheme not in ("http", "https"):
        raise ValueError(f'Input file URLs must be http(s), not "{url}".')
    return absolute


# --- results --------------------------------------------------------------------------------


def encode_outputs(value: Any) -> dict[str, Any]:
    """A handler's return value as the `outputs` of a `result` frame.

    Accepted: None (an empty result), a str (the text), or a mapping with `text` and/or
    `files`, where each file is (name, data[, content_type]), a mapping with `name`,
    `data` and optionally `content_type`, or a path. Data is bytes (str is sent as UTF-8).
    """
    if value is None:
        return {}
    if isinstance(value, str):
        return {"text": value}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"A handler returns a str, a dict with 'text' and/or 'files', or None, not {type(value).__name__}."
        )
    unknown = sorted(str(key) for key in value if key not in ("text", "files"))
    if unknown:
        raise TypeError(f"A handler's result may hold only 'text' and 'files', not {', '.join(unknown)}.")
    outputs: dict[str, Any] = {}
    text = value.get("text")
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"The result's 'text' must be a str, not {type(text).__name__}.")
        outputs["text"] = text
    files = value.get("files")
    if files:
        if isinstance(files, str | bytes | Mapping) or not hasattr(files, "__iter__"):
            raise TypeError("The result's 'files' must be a list of files.")
        outputs["files"] = [encode_file(item) for item in files]
    return outputs


def encode_file(item: Any) -> dict[str, str]:
    """One result file as {"name", "content_type", "data": base64}."""
    content_type: str | None = None
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        name, data = path.name, path.read_bytes()
    elif isinstance(item, Mapping):
        name, data, content_type = item.get("name"), item.get("data"), item.get("content_type")
    elif isinstance(item, tuple | list) and len(item) in (2, 3):
        name, data = item[0], item[1]
        content_type = item[2] if len(item) == 3 else None
    else:
        raise TypeError("Each result file is (name, data[, content_type]), a dict with name and data, or a path.")
    if not isinstance(name, str) or not name:
        raise TypeError("A result file needs a non-empty str name.")
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f'The data of result file "{name}" must be bytes, not {type(data).__name__}.')
    if content_type is None:
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return {"name": name, "content_type": content_type, "data": base64.b64encode(bytes(data)).decode("ascii")}


def dumps(frame: dict[str, Any]) -> str:
    """A frame as the JSON text sent to the hub."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def check_size(frame: dict[str, Any], text: str) -> None:
    """Refuse a frame the hub would close the connection over (it would then requeue the request in vain)."""
    size = len(text.encode())
    if size > MAX_FRAME_BYTES:
        files = frame.get("outputs", {}).get("files") or []
        raw = sum(len(f["data"]) * 3 // 4 for f in files)
        raise ResultTooLarge(
            f"The result is {size / 1024:.0f} KiB as a frame ({raw / 1024:.0f} KiB of files before base64) "
            "but the hub accepts at most 1024 KiB: keep result files under about 700 KiB."
        )


def error_text(exc: BaseException) -> str:
    """The message an `error` frame carries for an exception raised by a handler."""
    text = str(exc).strip() or type(exc).__name__
    return text[:MAX_MESSAGE_CHARS]


# --- logging --------------------------------------------------------------------------------


def summary(frame: dict[str, Any], limit: int = 200) -> str:
    """A frame for the verbose log: the token hidden, base64 data and long strings cut short."""
    return json.dumps(_shorten(frame, limit), ensure_ascii=False)


def _shorten(value: Any, limit: int, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _shorten(v, limit, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    if isinstance(value, str):
        if key == "token":
            return value[:6] + "…" if len(value) > 6 else "…"
        if key == "data":
            return f"<{len(value) * 3 // 4} bytes>"
        if len(value) > limit:
            return value[:limit] + f"… ({len(value)} chars)"
    return value
