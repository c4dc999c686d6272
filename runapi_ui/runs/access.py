"""Who may generate, and whose RunAPI key pays: the key policy and the optional login.

A deployment is public when strangers can reach it: on Hugging Face Spaces (`SPACE_ID`
set), with `--share`, or listening on anything but loopback. Public by default means
visitors bring their own key: the operator's key serves visitors only when the operator
opts in (`RUNAPI_SHARE_SERVER_KEY=1` / `--share-server-key`). Locally, the operator's key
is used as before. `KeyPolicy.backend_for` applies the policy to one request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from ..translations import ENGLISH, text

if TYPE_CHECKING:  # settings pulls in the client; this module needs only the type
    from .settings import Settings

DEMO_KEY = "demo-key"  # what the app sends its own simulator: not a secret


class KeySource(str, Enum):
    """Whose key a generation runs on, in the words the page shows."""

    VISITOR = "your key"
    SERVER = "this server's key"
    DEMO = "demo"


class KeyRequired(Exception):
    """Nothing may serve this visitor until they enter a usable RunAPI key."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KeyMalformed(KeyRequired):
    """The typed key holds spaces or characters no RunAPI key has."""


class AuthConfigError(ValueError):
    """`RUNAPI_UI_AUTH` cannot be read; the message never contains a password."""


@dataclass(frozen=True)
class Backend:
    """Where one generation goes, and with which key."""

    api_key: str = field(repr=False)
    base_url: str
    source: KeySource

    @property
    def is_demo(self) -> bool:
        return self.source is KeySource.DEMO


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # another host name: it may resolve to anything, so assume public
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address.is_loopback


@dataclass(frozen=True)
class KeyPolicy:
    """The deployment's key rules, decided once at start-up from the settings."""

    server_key: str | None = field(repr=False)  # the operator's key, if any
    base_url: str
    demo_forced: bool  # --demo: everyone gets the simulator
    public_because: tuple[str, ...]  # empty when the deployment is local
    # What a visitor who types no key gets: the server's key, the demo, or None (asked
    # for a key).
    keyless_source: KeySource | None
    share_server_key: bool  # the operator's opt-in, kept to explain the policy

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyPolicy:
        reasons = []
        if settings.space_id:
            reasons.append("SPACE_ID is set (Hugging Face Spaces)")
        if settings.share:
            reasons.append("--share")
        if settings.public:
            reasons.append("RUNAPI_UI_PUBLIC=1")
        if not is_loopback_host(settings.host):
            reasons.append(f"listening on {settings.host}, not loopback")
        server_key = (settings.api_key or "").strip() or None
        keyless: KeySource | None
        if settings.demo:
            keyless = KeySource.DEMO
        elif server_key and (not reasons or settings.share_server_key):
            keyless = KeySource.SERVER
        elif settings.no_demo:
            keyless = None
        else:
            keyless = KeySource.DEMO
        return cls(
            server_key=server_key,
            base_url=settings.base_url,
            demo_forced=settings.demo,
            public_because=tuple(reasons),
            keyless_source=keyless,
            share_server_key=settings.share_server_key,
        )

    @property
    def public(self) -> bool:
        return bool(self.public_because)

    @property
    def offers_demo(self) -> bool:
        """Whether some visitor may end up on the built-in simulator (so it must run)."""
        return self.keyless_source is KeySource.DEMO

    @property
    def asks_for_visitor_keys(self) -> bool:
        """Whether the page shows the key field: wherever a visitor's own key changes
        something. Locally with a server key it stays hidden, as before."""
        return not self.demo_forced and (self.public or self.keyless_source is not KeySource.SERVER)

    def describe(self) -> str:
        """The start-up line saying which policy is in force (never the key)."""
        if self.demo_forced:
            return "Key policy: demo (--demo): every visitor gets the built-in simulator."
        where = f"public ({', '.join(self.public_because)})" if self.public else "local (loopback)"
        if self.keyless_source is KeySource.SERVER:
            who = "visitors without a key of their own generate on this server's RUNAPI_API_KEY"
            if self.public:
                who += " (shared on purpose: RUNAPI_SHARE_SERVER_KEY / --share-server-key)"
        else:
            fallback = (
                "get the demo" if self.keyless_source is KeySource.DEMO else "are asked for one"
            )
            who = f"visitors bring their own RunAPI key; without one they {fallback}"
            if self.server_key:
                who += (
                    "; this server's key is not shared (set RUNAPI_SHARE_SERVER_KEY=1 or "
                    "--share-server-key to share it)"
                )
        return f"Key policy: {where}: {who}."

    def page_note(self, language: str = ENGLISH) -> str:
        """What the page says about whose key pays (plain text: the caller escapes it)."""
        if self.demo_forced:
            return text(language, "policy.demo_forced")
        if self.keyless_source is KeySource.SERVER:
            if not self.public:
                return text(language, "policy.server_local")
            return text(language, "policy.server_public")
        if self.keyless_source is KeySource.DEMO:
            return text(language, "policy.visitor_or_demo")
        return text(language, "policy.visitor_only")

    def backend_for(self, typed_key: str | None, demo_url: str | None) -> Backend:
        """The backend for one request: the visitor's typed key, else what the policy
        gives a keyless visitor. `demo_url` is the running simulator's, if any."""
        typed = (typed_key or "").strip()
        if typed and not self.demo_forced:
            if not (typed.isascii() and typed.isprintable()) or any(c.isspace() for c in typed):
                raise KeyMalformed(
                    "The RunAPI key field holds spaces or unusual characters inside the key. "
                    "Copy the key again from your RunAPI dashboard."
                )
            return Backend(typed, self.base_url, KeySource.VISITOR)
        if self.keyless_source is KeySource.SERVER and self.server_key:  # always set then
            return Backend(self.server_key, self.base_url, KeySource.SERVER)
        if self.keyless_source is KeySource.DEMO and demo_url is not None:
            return Backend(DEMO_KEY, demo_url, KeySource.DEMO)
        raise KeyRequired(
            "Enter your RunAPI key to generate: this server does not lend its own key. "
            "You will find it in your RunAPI dashboard."
        )


def auth_from(settings: Settings) -> list[tuple[str, str]] | None:
    """The logins for Gradio's `auth`, from `RUNAPI_UI_AUTH`: `user:pass` pairs separated
    by commas, or the path of a file with one pair a line (blank lines and `#` comments
    skipped). None when unset. Raises AuthConfigError, naming the problem but never a
    password."""
    value = (settings.auth or "").strip()
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise AuthConfigError(
                f"RUNAPI_UI_AUTH names the file {path}, which cannot be read "
                f"({type(error).__name__}). Make it a readable UTF-8 text file."
            ) from None
        lines = [(f"line {n}", line.strip()) for n, line in enumerate(text.splitlines(), 1)]
        entries = [(where, line) for where, line in lines if line and not line.startswith("#")]
        origin = f"in {path}"
    else:
        if ":" not in value:
            # Could be a mistyped path or a bare password: say which, show neither.
            raise AuthConfigError(
                "RUNAPI_UI_AUTH is neither user:pass pairs nor the path of an existing file "
                "(value not shown, as it may be a password). Set it to user:pass[,user:pass] "
                "or to the path of a file of user:pass lines."
            )
        entries = [(f"entry {n}", part.strip()) for n, part in enumerate(value.split(","), 1)]
        origin = "in RUNAPI_UI_AUTH"
    logins: dict[str, str] = {}
    for where, entry in entries:
        user, colon, password = entry.partition(":")
        user, password = user.strip(), password.strip()
        if not colon or not user or not password:
            missing = "':'" if not colon else "user name" if not user else "password"
            raise AuthConfigError(
                f"{where} {origin} has no {missing}: each login must be user:pass "
                "(password not shown)."
            )
        if user in logins:
            raise AuthConfigError(f"{where} {origin} repeats the user {user!r}.")
        logins[user] = password
    if not logins:
        raise AuthConfigError(f"No user:pass line {origin}: add one, or unset RUNAPI_UI_AUTH.")
    return list(logins.items())
