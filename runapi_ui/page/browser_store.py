"""Reading a `gr.BrowserState` as another tab of the same browser stored it.

Two tabs of one browser share one history in localStorage, but each holds its own copy
and writes the whole of it, so a tab's write would drop the runs the other tab added
since. The page therefore hands the server what the other tab stored (the `storage`
event's new value) and the server merges it in. That value is sealed the way Gradio
6.31's frontend seals every BrowserState: CryptoJS AES-256-CBC with a passphrase (the
hex SHA-256 of the state's `secret`) and OpenSSL's key derivation (EVP_BytesToKey: MD5,
one round, an 8-byte salt), stored as "<16 unused bytes, base64>:<base64 of 'Salted__',
the salt and the ciphertext>". The secret is in the page's config: this hides nothing,
it only reads what Gradio wrote.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAX_SEALED_CHARS = 8_000_000  # a history is at most ~1.5 MB of JSON, ~2 MB sealed


def unseal(stored: Any, secret: str) -> Any:
    """The value a BrowserState stored, or None if `stored` is not one sealed with `secret`."""
    if not isinstance(stored, str) or len(stored) > MAX_SEALED_CHARS or ":" not in stored:
        return None
    try:
        sealed = base64.b64decode(stored.split(":", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    if sealed[:8] != b"Salted__" or len(sealed) < 32 or (len(sealed) - 16) % 16:
        return None
    key, iv = _key_and_iv(secret, sealed[8:16])
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = decryptor.update(sealed[16:]) + decryptor.finalize()
        return json.loads(unpadder.update(plain) + unpadder.finalize())
    except ValueError:  # a wrong secret: bad padding, or bytes that are not JSON
        return None


def seal(value: Any, secret: str) -> str:
    """`value` as Gradio's frontend stores a BrowserState: the inverse of `unseal`, for
    the tests and the benchmark, which store histories as a browser would."""
    salt = os.urandom(8)
    key, iv = _key_and_iv(secret, salt)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(value).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    sealed = b"Salted__" + salt + encryptor.update(plain) + encryptor.finalize()
    unused = base64.b64encode(os.urandom(16)).decode("ascii")
    return f"{unused}:{base64.b64encode(sealed).decode('ascii')}"


def _key_and_iv(secret: str, salt: bytes) -> tuple[bytes, bytes]:
    passphrase = hashlib.sha256(secret.encode()).hexdigest().encode()
    derived = block = b""
    while len(derived) < 48:
        block = hashlib.md5(block + passphrase + salt).digest()  # OpenSSL's KDF
        derived += block
    return derived[:32], derived[32:48]
