"""The mock app's model: waits a while, reports progress, streams an answer that echoes the request.

It downloads every input file it is given and says what it received, so a space's
whole path (form, upload, signed URL, download) can be checked without a real model.
A prompt starting with `!fail` makes it raise, to see how a space shows an app error.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from relay.client.request import Request

FILE_FIELDS = ("audio", "video", "files")


def parse_delay(text: str) -> tuple[float, float]:
    """`--delay`: "2" (always 2 s) or "1-5" (between 1 and 5 s, at random)."""
    low, sep, high = text.strip().partition("-")
    try:
        bounds = (float(low), float(high) if sep else float(low))
    except ValueError:
        raise ValueError(f'A delay is SECONDS or MIN-MAX, like "2" or "1-5", not "{text}".') from None
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise ValueError(f'A delay needs 0 <= MIN <= MAX, not "{text}".')
    return bounds


def describe(field: str, entry: dict[str, Any], received: int) -> str:
    name = entry.get("name") or "?"
    content_type = entry.get("content_type") or "application/octet-stream"
    return f"{field} {name} ({content_type}, {received} bytes received)"


def answer(prompt: str | None, files: list[str]) -> str:
    """The mock model's answer: the prompt echoed, then one sentence per file received."""
    parts = [f'You said: "{prompt}".' if prompt else "You sent no prompt."]
    if files:
        parts.append("I received " + "; ".join(files) + ".")
    return " ".join(parts)


def make_handler(
    delay: tuple[float, float] = (1.0, 5.0), rng: random.Random | None = None
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """The mock model as an async handler, taking `delay` seconds in all (half thinking, half streaming)."""
    rng = rng or random.Random()

    async def mock_model(request: Request) -> dict[str, Any]:
        prompt = request.prompt
        if prompt is not None and prompt.startswith("!fail"):
            raise RuntimeError(prompt[len("!fail") :].strip() or "The mock model failed, as asked.")
        total = rng.uniform(*delay)
        steps = 4
        await request.progress(0.0, "loading the mock model")
        for step in range(1, steps + 1):
            await asyncio.sleep(total / 2 / steps)
            await request.progress(0.5 * step / steps, f"thinking {step}/{steps}")
        received = []
        for field in FILE_FIELDS:
            entries = request.inputs.get(field)
            entries = entries if isinstance(entries, list) else [entries] if isinstance(entries, dict) else []
            for index, entry in enumerate(entries):
                await request.progress(0.5, f"reading {entry.get('name')}")
                data = await request.read(field, index)
                received.append(describe(field, entry, len(data)))
        text = answer(prompt, received)
        words = text.split(" ")
        for n, word in enumerate(words):
            await request.partial(word if n == 0 else " " + word)
            await asyncio.sleep(total / 2 / len(words))
        await request.progress(1.0, "done")
        return {"text": text}

    return mock_model
