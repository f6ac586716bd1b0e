"""App tokens: made with `secrets`, stored only as a hash, compared in constant time."""

import hmac
import re

import pytest

from spaces import tokens


def test_it_generates_tokens_with_the_prefix() -> None:
    token = tokens.generate_token()
    assert token.startswith("sh_")
    assert re.fullmatch(r"sh_[A-Za-z0-9_-]{43}", token)


def test_it_generates_a_different_token_each_time() -> None:
    assert len({tokens.generate_token() for _ in range(50)}) == 50


def test_it_hashes_a_token_into_something_that_is_not_the_token() -> None:
    token = tokens.generate_token()
    digest = tokens.hash_token(token)
    assert digest != token
    assert token not in digest
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert tokens.hash_token(token) == digest


def test_it_keeps_a_short_display_prefix() -> None:
    token = "sh_abcdefghijklmnop"
    assert tokens.display_prefix(token) == "sh_abcdefgh"


def test_it_matches_the_right_token() -> None:
    token = tokens.generate_token()
    assert tokens.token_matches(token, tokens.hash_token(token))


@pytest.mark.parametrize("wrong", ["", "sh_", "sh_wrong", "x" * 46])
def test_it_refuses_a_wrong_token(wrong: str) -> None:
    token = tokens.generate_token()
    assert not tokens.token_matches(wrong, tokens.hash_token(token))


def test_it_refuses_the_hash_itself_as_a_token() -> None:
    token = tokens.generate_token()
    digest = tokens.hash_token(token)
    assert not tokens.token_matches(digest, digest)


def test_it_refuses_every_token_when_no_hash_is_stored() -> None:
    assert not tokens.token_matches(tokens.generate_token(), "")
    assert not tokens.token_matches("", "")


def test_it_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    compare_digest = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    token = tokens.generate_token()
    assert tokens.token_matches(token, tokens.hash_token(token))
    assert calls == [(tokens.hash_token(token), tokens.hash_token(token))]
