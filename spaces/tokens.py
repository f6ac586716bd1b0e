"""App tokens: generated with `secrets`, stored only as a SHA-256 hash.

Tokens carry 256 bits of randomness, so a fast hash is enough (there is nothing
to brute-force); the comparison is constant-time.
"""

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "sh_"  # noqa: S105 - a public marker, not a secret
DISPLAY_CHARS = 8  # kept in clear after the prefix, for lookup and display


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def display_prefix(token: str) -> str:
    return token[: len(TOKEN_PREFIX) + DISPLAY_CHARS]


def token_matches(token: str, token_hash: str) -> bool:
    if not token or not token_hash:
        return False
    return hmac.compare_digest(hash_token(token), token_hash)
