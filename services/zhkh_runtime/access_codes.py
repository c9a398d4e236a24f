"""Per-appeal access codes for citizens without an account: random, shown once (registration answer
and the "registered" notice), stored only as a salted scrypt hash (hashlib, OpenSSL's scrypt).

A code is 10 characters of Crockford's base32 (50 bits), printed as ``XXXXX-XXXXX``. Input is
normalised (case, spaces, dashes, O->0, I/L->1), so a code read over the phone still matches.
Online guessing is bounded by the rate limits of the endpoints that check codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
LENGTH = 10
_N, _R, _P = 2**10, 8, 1  # 1 MiB, ~3 ms of CPU per hash (made once per appeal by intake, checked per citizen
# request): offline, guessing one appeal's 50-bit code costs ~2^49 such hashes


def generate() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise(code: str) -> str:
    s = code.upper().replace("-", "").replace(" ", "")
    return s.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))


def _scrypt(code: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(normalise(code).encode("ascii", "replace"), salt=salt, n=n, r=r, p=p, dklen=32)


def hash_code(code: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(code, salt, _N, _R, _P)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify(code: str, stored: str | None) -> bool:
    """Constant-time check of ``code`` against a stored hash (False for no hash or a malformed one)."""
    if not stored or not code or len(code) > 40:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        got = _scrypt(code, base64.urlsafe_b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, got)
