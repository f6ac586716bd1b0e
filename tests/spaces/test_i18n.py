"""English and Simplified Chinese: complete catalogues, compiled and current; both languages render.

The catalogue is locale/zh_Hans/LC_MESSAGES/django.po, compiled into django.mo (both
committed, so a fresh machine needs no gettext). To update them after changing strings:

    DEBUG=1 .venv/bin/python manage.py makemessages -l zh_Hans --no-obsolete \
        --ignore=.venv --ignore=tests --ignore=bench
    (translate the new entries in django.po)
    DEBUG=1 .venv/bin/python manage.py compilemessages -l zh_Hans --ignore=.venv
"""

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polib
import pytest
from django.test import Client

from spaces.models import Space

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
SOURCES = ["manage.py", "spacehub", "spaces", "relay", "templates", "locale"]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w*\}")
HAN = re.compile(r"[\u4e00-\u9fff]")

Key = tuple[str | None, str]


def key(entry: Any) -> Key:
    return (entry.msgctxt or None, entry.msgid)


def catalogue_ids(po: polib.POFile) -> set[Key]:
    return {key(entry) for entry in po if not entry.obsolete}


# The catalogue


def test_it_ships_the_catalogue_and_its_compiled_form() -> None:
    assert PO.is_file(), f"missing {PO.relative_to(ROOT)}"
    assert MO.is_file(), f"missing {MO.relative_to(ROOT)}: run compilemessages"


def test_it_translates_every_string() -> None:
    po = polib.pofile(str(PO))
    untranslated = [entry.msgid for entry in po.untranslated_entries()]
    fuzzy = [entry.msgid for entry in po.fuzzy_entries()]
    obsolete = [entry.msgid for entry in po.obsolete_entries()]
    assert not untranslated, f"untranslated in {PO.name}: {untranslated}"
    assert not fuzzy, f"fuzzy (check, then remove the flag) in {PO.name}: {fuzzy}"
    assert not obsolete, f"obsolete entries in {PO.name} (run makemessages --no-obsolete): {obsolete}"
    assert not po.metadata_is_fuzzy
    assert po.metadata["Language"] == "zh_Hans"
    assert po.percent_translated() == 100
    assert len(po) > 50


def test_it_keeps_the_placeholders_in_every_translation() -> None:
    wrong = [
        (entry.msgid, entry.msgstr)
        for entry in polib.pofile(str(PO))
        if sorted(PLACEHOLDER.findall(entry.msgid)) != sorted(PLACEHOLDER.findall(entry.msgstr))
    ]
    assert not wrong, f"placeholders differ: {wrong}"


def test_it_translates_into_chinese() -> None:
    """A msgstr with no Chinese character at all is almost surely a copied English string."""
    allowed = {"SpaceHub", "English"}
    latin_only = [
        entry.msgid for entry in polib.pofile(str(PO)) if not HAN.search(entry.msgstr) and entry.msgstr not in allowed
    ]
    assert not latin_only, f"not translated into Chinese: {latin_only}"


def test_it_ships_a_compiled_catalogue_that_matches_the_source() -> None:
    po = polib.pofile(str(PO))
    mo = polib.mofile(str(MO))
    compiled = {key(entry): entry.msgstr for entry in mo if entry.msgid}
    source = {key(entry): entry.msgstr for entry in po.translated_entries()}
    missing = sorted(k[1] for k in source.keys() - compiled.keys())
    extra = sorted(k[1] for k in compiled.keys() - source.keys())
    changed = sorted(k[1] for k in source.keys() & compiled.keys() if source[k] != compiled[k])
    hint = "the .mo is stale: run compilemessages -l zh_Hans"
    assert not missing, f"{hint}; not in the .mo: {missing}"
    assert not extra, f"{hint}; only in the .mo: {extra}"
    assert not changed, f"{hint}; translated differently: {changed}"
    assert "nplurals=1" in mo.metadata.get("Plural-Forms", "")


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext (xgettext) to extract strings")
def test_it_has_every_translatable_string_of_the_source_in_the_catalogue(tmp_path: Path) -> None:
    """Run makemessages on a copy of the source: its msgids must be the committed ones."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, copy / name)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "spacehub.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    fresh = polib.pofile(str(copy / PO.relative_to(ROOT)))
    committed = polib.pofile(str(PO))
    new = sorted(k[1] for k in catalogue_ids(fresh) - catalogue_ids(committed))
    gone = sorted(k[1] for k in catalogue_ids(committed) - catalogue_ids(fresh))
    hint = "locale/zh_Hans/LC_MESSAGES/django.po is stale: run makemessages, translate, compilemessages"
    assert not new, f"{hint}; strings missing from it: {new}"
    assert not gone, f"{hint}; strings no longer in the source: {gone}"
    assert not [entry.msgid for entry in fresh.untranslated_entries()]


# Choosing the language


def test_it_speaks_english_by_default(client: Client, make_space: Any) -> None:
    make_space("Echo")
    html = client.get("/").content.decode()
    assert '<html lang="en">' in html
    assert ">Spaces</h1>" in html
    assert "Log in" in html


def test_it_speaks_chinese_to_a_browser_that_asks_for_it(client: Client, make_space: Any) -> None:
    make_space("Echo")
    for header in ("zh-hans", "zh-Hans,zh;q=0.9,en;q=0.5", "zh-CN,zh;q=0.9"):
        response = client.get("/", headers={"accept-language": header})
        html = response.content.decode()
        assert '<html lang="zh-hans">' in html, header
        assert ">空间</h1>" in html
        assert "登录" in html
        assert ">Spaces</h1>" not in html
        assert response["Content-Language"] == "zh-hans"


def test_it_falls_back_to_english_for_other_languages(client: Client, db: Any) -> None:
    html = client.get("/", headers={"accept-language": "fr-FR,fr;q=0.9"}).content.decode()
    assert '<html lang="en">' in html


def test_it_switches_the_language_with_the_switcher(client: Client, make_space: Any) -> None:
    make_space("Echo")
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/spaces/echo/"})
    assert response.status_code == 302
    assert response["Location"] == "/spaces/echo/"
    assert response.cookies["django_language"].value == "zh-hans"
    html = client.get("/spaces/echo/", headers={"accept-language": "en"}).content.decode()
    assert '<html lang="zh-hans">' in html
    assert "应用未连接" in html
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.cookies["django_language"].value == "en"
    assert '<html lang="en">' in client.get("/", headers={"accept-language": "zh-hans"}).content.decode()


def test_it_ignores_an_unknown_language(client: Client, db: Any) -> None:
    response = client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    assert response.status_code == 302
    assert "django_language" not in response.cookies


def test_it_does_not_switch_on_get(client: Client, db: Any) -> None:
    response = client.get("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert "django_language" not in response.cookies


def test_it_refuses_a_switch_without_the_csrf_token(db: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert response.status_code == 403
    assert "django_language" not in response.cookies


def test_it_does_not_redirect_off_site_after_a_switch(client: Client, db: Any) -> None:
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "https://evil.example/"})
    assert response["Location"] == "/"


# Every page renders in both languages, and in Chinese no English is left


class VisibleText(HTMLParser):
    """The words a person sees or hears: text outside <script>/<style>, labels in attributes."""

    ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "pre", "code"):
            self.hidden += 1
        values = dict(attrs)
        self.parts += [values[name] or "" for name in self.ATTRIBUTES if name in values]
        if tag == "input" and values.get("type") in ("submit", "button"):
            self.parts.append(values.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "pre", "code"):
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def english_words(html: str, allowed: set[str]) -> set[str]:
    parser = VisibleText()
    parser.feed(html)
    text = " ".join(parser.parts)
    for phrase in sorted(allowed, key=len, reverse=True):
        text = text.replace(phrase, " ")
    return set(re.findall(r"[A-Za-z]{2,}", text))


# What is not ours to translate: names people typed, our brand, language names, units, flags.
NOT_TRANSLATED = {"SpaceHub", "English", "AI", "MB", "UTC", "Django", "--space", "sam", "alice", "Echo", "echo"}
# Django's admin leaves these untranslated in zh-hans (screen-reader labels, alt texts): not ours.
DJANGO_ADMIN_ENGLISH = {"Add link", "Change or view list link", "Model name", "Search", "True", "False"}


@pytest.fixture
def pages(make_space: Any) -> dict[str, str]:
    echo, _ = make_space("Echo", description="", feature_audio=True, feature_video=True, feature_files=True)
    return {
        "list": "/",
        "space": echo.get_absolute_url(),
        "missing": "/spaces/no-such-space/",
        "login": "/accounts/login/",
        "admin list": "/admin/spaces/space/",
        "admin change": f"/admin/spaces/space/{echo.pk}/change/",
        "admin add": "/admin/spaces/space/add/",
    }


@pytest.mark.parametrize(
    "language, header, marker",
    [("en", "en", "Spaces"), ("zh-hans", "zh-Hans,zh;q=0.9", "空间")],
)
def test_it_renders_every_page_in_both_languages(
    client: Client, django_user_model: Any, pages: dict[str, str], language: str, header: str, marker: str
) -> None:
    anonymous = {"list", "space", "missing", "login"}
    for name, url in pages.items():
        if name not in anonymous:
            client.force_login(django_user_model.objects.create_superuser("sam", "sam@example.com", "pw"))
            anonymous = set(pages)  # log in once
        response = client.get(url, headers={"accept-language": header})
        assert response.status_code == (404 if name == "missing" else 200), name
        html = response.content.decode()
        assert f'lang="{language}"' in html, name
        assert marker in html, name


def test_it_leaves_no_english_on_the_public_pages_in_chinese(client: Client, alice: Any, pages: dict[str, str]) -> None:
    zh = {"accept-language": "zh-hans"}
    for name in ("list", "space", "missing", "login"):
        html = client.get(pages[name], headers=zh).content.decode()
        assert not english_words(html, NOT_TRANSLATED), f"{name}: untranslated words"
    client.force_login(alice)
    for name in ("list", "space"):
        html = client.get(pages[name], headers=zh).content.decode()
        assert not english_words(html, NOT_TRANSLATED), f"{name} (logged in): untranslated words"


def test_it_leaves_no_english_on_the_space_admin_in_chinese(
    client: Client, django_user_model: Any, pages: dict[str, str]
) -> None:
    client.force_login(django_user_model.objects.create_superuser("sam", "sam@example.com", "pw"))
    zh = {"accept-language": "zh-hans"}
    token_prefix = Space.objects.get(name="Echo").token_prefix  # shown in the admin: random letters
    allowed = NOT_TRANSLATED | DJANGO_ADMIN_ENGLISH | {token_prefix}
    for name in ("admin list", "admin change", "admin add"):
        html = client.get(pages[name], headers=zh).content.decode()
        assert not english_words(html, allowed), f"{name}: untranslated words"
    echo_id = pages["admin change"].split("/")[-3]
    html = client.post(f"/admin/spaces/space/{echo_id}/rotate-token/", headers=zh).content.decode()
    assert "新的应用令牌" in html
    assert not english_words(html, allowed), "token page: untranslated words"
