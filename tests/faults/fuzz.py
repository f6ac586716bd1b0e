"""Hypothesis strategies for hostile frames, and a reference reading of PROTOCOL.md section 1 to judge them.

The reference is written from the contract (and docs/protocol.md for the limits it names), not from
relay/frames.py: where the contract is silent it allows more than one answer (`Verdict.allowed`).
"""

import base64
import binascii
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Raw text frames must be encodable to go over a real socket; inside JSON anything goes (json.dumps
# escapes NUL and lone surrogates, which the hub must refuse: test_bad_strings.py).
SAFE_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
EXAMPLES = int(os.environ.get("FAULTS_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,  # a failure prints @reproduce_failure(...) to replay it exactly
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

INFLIGHT, BYSTANDER, UNKNOWN = "@inflight", "@bystander", "@unknown"
APP_TYPES = ["progress", "partial", "result", "error", "ping", "stopping"]
OTHER_TYPES = ["register", "request", "cancel", "pong", "state", "Partial", ""]

text = st.text(max_size=40)
huge = st.sampled_from(["a" * 300_000, "é" * 100_000, "🙂" * 50_000])
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
json_values = st.recursive(
    leaves, lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3), max_leaves=8
)
b64 = st.binary(max_size=64).map(lambda raw: base64.b64encode(raw).decode())
file_entries = st.fixed_dictionaries(
    {},
    optional={
        "name": text | st.just("../../etc/passwd") | st.just("x" * 300) | json_values,
        "content_type": st.sampled_from(["image/png", "text/html", "x" * 300]) | json_values,
        "data": b64 | st.sampled_from(["@@not base64@@", "YQ", ""]) | json_values,
    },
)
outputs = (
    st.none()
    | json_values
    | st.fixed_dictionaries(
        {}, optional={"text": text | huge | json_values, "files": st.lists(file_entries, max_size=3) | json_values}
    )
)
app_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(APP_TYPES)},
    optional={
        "id": st.sampled_from([INFLIGHT, INFLIGHT, BYSTANDER, UNKNOWN]) | text | json_values,
        "progress": st.floats(-2, 2) | st.sampled_from([0, 1, 0.5, True, "0.5"]) | json_values,
        "message": text | st.just("m" * 2001) | json_values,
        "text": text | huge | json_values,
        "outputs": outputs,
    },
) | st.fixed_dictionaries(
    {"type": st.sampled_from(OTHER_TYPES) | text | json_values},
    optional={"id": st.sampled_from([INFLIGHT, UNKNOWN]) | json_values, "text": text},
)


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


raw_frames = (
    st.text(SAFE_CHARS, max_size=60).map(lambda t: ("text", t))
    | st.binary(max_size=60).map(lambda b: ("bytes", b))
    | st.sampled_from([10, 900, 990, 5000, 100_000]).map(
        lambda d: ("text", '{"type": "partial", "id": "@inflight", "text": "x", "junk": ' + nested(d) + "}")
    )
    | st.sampled_from(["", "null", "[]", '"ping"', "{", '{"type": null}', "NaN", '{"type": "ping"'] * 1).map(
        lambda t: ("text", t)
    )
)
frames = app_frames.map(lambda f: ("json", f)) | raw_frames


def storable(value: Any) -> bool:
    """No string holds a NUL (PostgreSQL text cannot) or a lone surrogate (UTF-8 cannot)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return True


def resolve(value: Any, ids: dict[str, str]) -> Any:
    """Replace the id placeholders by the ids of this run."""
    if isinstance(value, dict):
        return {k: ids.get(v, v) if k == "id" and isinstance(v, str) else resolve(v, ids) for k, v in value.items()}
    return value


def encode(kind: str, value: Any, ids: dict[str, str]) -> tuple[str | None, bytes | None]:
    if kind == "bytes":
        return None, value
    if kind == "json":
        return json.dumps(resolve(value, ids)), None
    for placeholder, real in ids.items():
        value = value.replace(placeholder, real)
    return value, None


@dataclass
class Verdict:
    """What the contract allows as the answer to one frame, and what an accepted frame does."""

    allowed: set[str]  # "ok" (no error frame), "bad_message", "unknown_request"
    pongs: int = 0  # extra pongs the frame itself earns
    ends: str = ""  # "succeeded" / "failed" when accepted: the request in flight ends
    text: str | None = None  # the partial text it adds, or the result text it sets
    files: int = 0
    error_message: str | None = None


BAD, UNKNOWN_REQUEST, OK = {"bad_message"}, {"unknown_request"}, {"ok"}
EITHER = {"ok", "bad_message"}


def _str_or_absent(frame: dict[str, Any], key: str, limit: int | None = None) -> bool | None:
    """True: fine; False: wrong; None: a length the contract does not fix."""
    value = frame.get(key)
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    return True if limit is None or len(value) <= limit else None


JUNK = ', "junk": '


def judge(text_frame: str | None, inflight: str, ended: bool) -> Verdict:
    """The contract's answer to one frame after registration; `ended`: the request in flight has ended."""
    if text_frame is not None and JUNK in text_frame:
        # Nesting near the parser's recursion limit: the hub may parse it (and ignore the junk) or
        # refuse it as bad JSON; judge the rest of the frame, and allow either.
        verdict = judge(text_frame.split(JUNK)[0] + "}", inflight, ended)
        verdict.allowed = verdict.allowed | BAD
        return verdict
    if text_frame is None:
        return Verdict(BAD)  # binary frames are not part of the protocol
    try:
        frame = json.loads(text_frame)
    except (ValueError, RecursionError):
        return Verdict(BAD)
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str) or not storable(frame):
        return Verdict(BAD)
    kind = frame["type"]
    if kind == "ping":
        return Verdict(OK, pongs=1)
    if kind == "stopping":
        return Verdict(OK)
    if kind not in ("progress", "partial", "result", "error"):
        return Verdict(BAD)
    request_id = frame.get("id")
    if not isinstance(request_id, str):
        return Verdict(BAD)
    if request_id != inflight or ended:
        return Verdict(UNKNOWN_REQUEST | ({"bad_message"} if len(request_id) > 64 else set()))
    return _judge_fields(kind, frame)


def _judge_fields(kind: str, frame: dict[str, Any]) -> Verdict:
    if kind == "partial":
        return Verdict(OK, text=frame["text"]) if isinstance(frame.get("text"), str) else Verdict(BAD)
    if kind == "progress":
        value = frame.get("progress")
        number = value is None or (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
        )
        message = _str_or_absent(frame, "message", 2000)
        if not number or message is False:
            return Verdict(BAD)
        return Verdict(OK) if message else Verdict(BAD)  # docs/protocol.md: at most 2000 characters
    if kind == "error":
        message = frame.get("message")
        if message is not None and not isinstance(message, str):
            return Verdict(BAD)
        return Verdict(OK, ends="failed", error_message=message)
    return _judge_result(frame)


def _judge_result(frame: dict[str, Any]) -> Verdict:
    outputs = frame.get("outputs")
    if outputs is None:
        return Verdict(OK, ends="succeeded")
    if not isinstance(outputs, dict):
        return Verdict(BAD)
    text = outputs.get("text")
    if text is not None and not isinstance(text, str):
        return Verdict(BAD)
    files = outputs.get("files")
    allowed = OK
    if files is None:
        files = []
    elif not isinstance(files, list):
        # A falsy non-list (0, "", {}) the hub may read as "no files"; the contract calls it a wrong type.
        return Verdict(EITHER if not files else BAD, ends="succeeded", text=text)
    if len(files) > 20:
        return Verdict(BAD)
    for entry in files:
        if not isinstance(entry, dict):
            return Verdict(BAD)
        name, content_type = _str_or_absent(entry, "name", 255), _str_or_absent(entry, "content_type", 255)
        if name is False or content_type is False or not isinstance(entry.get("data"), str):
            return Verdict(BAD)
        if "name" not in entry or entry["name"] is None:
            allowed = EITHER  # the contract shows a name on every file; a nameless one may be refused
        if name is None or content_type is None:
            allowed = EITHER
        try:
            base64.b64decode(entry["data"], validate=True)
        except (binascii.Error, ValueError):
            return Verdict(BAD)
    return Verdict(allowed, ends="succeeded", text=text, files=len(files))


def judge_register(text_frame: str | None, space: str, token: str) -> set[str]:
    """The contract's answer to a first frame: "registered", or the refusal's code."""
    if text_frame is None:
        return BAD
    try:
        frame = json.loads(text_frame)
    except (ValueError, RecursionError):
        return BAD
    if not isinstance(frame, dict) or frame.get("type") != "register" or not storable(frame):
        return BAD
    name, secret, client = frame.get("space"), frame.get("token"), frame.get("client")
    if not isinstance(name, str) or not isinstance(secret, str):
        return BAD
    if client is not None and not isinstance(client, dict):
        return BAD | ({"registered", "invalid_credentials"} if not client else set())
    if len(name) > 100 or len(secret) > 200:
        return {"bad_message", "invalid_credentials"}
    return {"registered"} if (name, secret) == (space, token) else {"invalid_credentials"}
