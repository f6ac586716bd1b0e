"""Screenshots of the spaces pages and the admin, in English and Simplified Chinese.

Not a test: a tool for looking at the pages. Start a hub first (see the README), with a
staff user and a few spaces, then:

    .venv/bin/python tests/screenshots.py --hub http://127.0.0.1:8123 --space everything \
        --prompt-space echo --user sam --password sam-password --out /tmp/shots

(--prompt-space: a space whose app is connected; the script submits a prompt there.)

It prints every console message and fails when the browser reports a CSP violation.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LANGUAGES = {"en": "en", "zh-hans": "zh-Hans,zh;q=0.9"}
PROMPTS = {"en": "Write a haiku about Python", "zh-hans": "写一首关于 Python 的诗"}


def log_in(page: Page, hub: str, user: str, password: str) -> None:
    page.goto(f"{hub}/accounts/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("form[action$='/accounts/login/'] button[type=submit]")
    page.wait_for_load_state()


def shoot(page: Page, url: str, path: Path) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=True)
    print(f"{path}  <- {url}")


def take(hub: str, space: str, prompt_space: str, user: str, password: str, out: Path, executable: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        for code, accept in LANGUAGES.items():
            context = browser.new_context(
                viewport={"width": 1200, "height": 800}, extra_http_headers={"Accept-Language": accept}
            )
            page = context.new_page()

            def on_console(message: Any, code: str = code) -> None:
                text = f"[{code}] console {message.type}: {message.text}"
                print(text)
                if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
                    problems.append(text)

            page.on("console", on_console)

            def on_response(response: Any, code: str = code) -> None:
                if response.status >= 400:
                    print(f"[{code}] {response.status} {response.url}")

            page.on("response", on_response)
            page.on("pageerror", lambda error, code=code: problems.append(f"[{code}] page error: {error}"))
            shoot(page, f"{hub}/", out / f"{code}-list.png")
            shoot(page, f"{hub}/spaces/{space}/", out / f"{code}-space-anonymous.png")
            shoot(page, f"{hub}/spaces/no-such-space/", out / f"{code}-404.png")
            shoot(page, f"{hub}/accounts/login/", out / f"{code}-login.png")
            log_in(page, hub, user, password)
            shoot(page, f"{hub}/spaces/{space}/", out / f"{code}-space.png")
            if prompt_space:
                page.goto(f"{hub}/spaces/{prompt_space}/")
                page.wait_for_selector("#app-status[data-connected=true]", timeout=10_000)
                before = page.locator("#requests .request-card").count()
                page.fill("textarea[name=prompt]", PROMPTS[code])
                page.click("#submit-button")
                page.wait_for_function(
                    "n => document.querySelectorAll('#requests .request-card').length > n",
                    arg=before,
                    timeout=10_000,
                )
                page.wait_for_selector("#requests .request-card:first-child[data-status=succeeded]", timeout=30_000)
                page.screenshot(path=str(out / f"{code}-space-result.png"), full_page=True)
                print(f"{out}/{code}-space-result.png")
            page.goto(f"{hub}/admin/spaces/space/")
            page.screenshot(path=str(out / f"{code}-admin-list.png"), full_page=True)
            page.goto(f"{hub}/admin/spaces/space/?q={space}")  # not the prompt space: rotating disconnects its app
            page.click("#result_list tbody tr:first-child th a")
            page.wait_for_load_state()
            page.screenshot(path=str(out / f"{code}-admin-change.png"), full_page=True)
            page.click("#rotate-token")
            page.wait_for_load_state()
            page.screenshot(path=str(out / f"{code}-admin-token.png"), full_page=True)
            print(f"{out}/{code}-admin-*.png")
            context.close()
        browser.close()
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", default="http://127.0.0.1:8123")
    parser.add_argument("--space", default="echo", help="the slug of an active space")
    parser.add_argument("--prompt-space", default="", help="the slug of a space with a connected prompt app")
    parser.add_argument("--user", default="sam")
    parser.add_argument("--password", default="sam-password")
    parser.add_argument("--out", type=Path, default=Path("/tmp/shots"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    problems = take(args.hub, args.space, args.prompt_space, args.user, args.password, args.out, args.chromium)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
