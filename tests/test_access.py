"""The key policy (whose key pays, on which deployment) and the login setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from runapi_ui.runs.access import (
    DEMO_KEY,
    AuthConfigError,
    Backend,
    KeyPolicy,
    KeyRequired,
    KeySource,
    auth_from,
    is_loopback_host,
)
from runapi_ui.runs.settings import Settings, settings_from

SERVER_KEY = "sk-server-5f0c9b2e7d"
VISITOR_KEY = "sk-visitor-a81d44"
DEMO_URL = "http://127.0.0.1:8787"
D, S, ASK = KeySource.DEMO, KeySource.SERVER, None

# (flags, environment, public, what a keyless visitor gets, key field shown)
POLICY_CASES = [
    # Locally on loopback: as before the policy existed.
    ([], {}, False, D, True),
    ([], {"RUNAPI_API_KEY": SERVER_KEY}, False, S, False),
    (["--demo"], {"RUNAPI_API_KEY": SERVER_KEY}, False, D, False),
    (["--no-demo"], {}, False, ASK, True),
    (["--no-demo"], {"RUNAPI_API_KEY": SERVER_KEY}, False, S, False),
    (["--host", "localhost"], {"RUNAPI_API_KEY": SERVER_KEY}, False, S, False),
    (["--host", "::1"], {"RUNAPI_API_KEY": SERVER_KEY}, False, S, False),
    # --share: visitors bring their own unless the operator opts in.
    (["--share"], {"RUNAPI_API_KEY": SERVER_KEY}, True, D, True),
    (["--share", "--share-server-key"], {"RUNAPI_API_KEY": SERVER_KEY}, True, S, True),
    (["--share", "--no-demo"], {"RUNAPI_API_KEY": SERVER_KEY}, True, ASK, True),
    (["--share", "--share-server-key"], {}, True, D, True),  # nothing to share
    ([], {"GRADIO_SHARE": "true", "RUNAPI_API_KEY": SERVER_KEY}, True, D, True),
    # Hugging Face Spaces.
    ([], {"SPACE_ID": "me/playground", "RUNAPI_API_KEY": SERVER_KEY}, True, D, True),
    (
        [],
        {"SPACE_ID": "me/pg", "RUNAPI_API_KEY": SERVER_KEY, "RUNAPI_SHARE_SERVER_KEY": "1"},
        True,
        S,
        True,
    ),
    ([], {"SPACE_ID": "me/pg", "RUNAPI_UI_NO_DEMO": "1"}, True, ASK, True),
    ([], {"SPACE_ID": "me/pg"}, True, D, True),
    # Listening beyond loopback.
    (["--host", "0.0.0.0"], {"RUNAPI_API_KEY": SERVER_KEY}, True, D, True),
    (["--host", "0.0.0.0", "--share-server-key"], {"RUNAPI_API_KEY": SERVER_KEY}, True, S, True),
    ([], {"GRADIO_SERVER_NAME": "192.168.1.20", "RUNAPI_API_KEY": SERVER_KEY}, True, D, True),
    (["--host", "::", "--no-demo"], {"RUNAPI_API_KEY": SERVER_KEY}, True, ASK, True),
    # --demo wins over everything.
    (["--demo", "--share", "--no-demo"], {"RUNAPI_API_KEY": SERVER_KEY}, True, D, False),
]


@pytest.mark.parametrize(("flags", "env", "public", "keyless", "key_field"), POLICY_CASES)
def test_the_policy_for_each_deployment(flags, env, public, keyless, key_field) -> None:
    settings = settings_from(flags, env)
    policy = KeyPolicy.from_settings(settings)
    assert policy.public is public
    assert policy.keyless_source is keyless
    assert policy.asks_for_visitor_keys is key_field
    assert policy.offers_demo is (keyless is D)

    keyless_backend = _backend_or_none(policy, None)
    if keyless is S:
        assert keyless_backend == Backend(SERVER_KEY, settings.base_url, S)
    elif keyless is D:
        assert keyless_backend == Backend(DEMO_KEY, DEMO_URL, D)
        assert keyless_backend.is_demo
    else:
        assert keyless_backend is None

    typed = policy.backend_for(f"  {VISITOR_KEY}\n", DEMO_URL)
    if settings.demo:
        assert typed == Backend(DEMO_KEY, DEMO_URL, D), "--demo ignores typed keys, as before"
    else:
        assert typed == Backend(VISITOR_KEY, settings.base_url, KeySource.VISITOR)
        assert not typed.is_demo

    for text in (policy.describe(), policy.page_note(), repr(policy), repr(typed)):
        assert SERVER_KEY not in text and VISITOR_KEY not in text


def _backend_or_none(policy: KeyPolicy, typed: str | None) -> Backend | None:
    try:
        return policy.backend_for(typed, DEMO_URL)
    except KeyRequired as error:
        assert "Enter your RunAPI key" in error.message
        return None


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        ([], {}),
        ([], {"RUNAPI_API_KEY": "sk-x"}),
        (["--demo"], {"RUNAPI_API_KEY": "sk-x"}),
        ([], {"RUNAPI_API_KEY": "   "}),
    ],
)
def test_locally_the_policy_keeps_the_old_rules(flags, env) -> None:
    """The rules `Playground.backend_for` and `Settings.may_run_demo` had: the typed key,
    else the server's, else the simulator (which runs exactly when a visitor may need it);
    --demo always the simulator."""
    settings = settings_from(flags, env)
    policy = KeyPolicy.from_settings(settings)
    assert policy.offers_demo is settings.may_run_demo
    keyless = policy.backend_for("", DEMO_URL)
    if settings.server_has_key:
        assert keyless == Backend("sk-x", settings.base_url, S)
    else:
        assert keyless.is_demo and keyless.base_url == DEMO_URL
    with_typed = policy.backend_for("sk-typed", DEMO_URL)
    assert with_typed.is_demo is settings.demo


def test_without_a_running_simulator_a_keyless_visitor_is_asked_for_a_key() -> None:
    policy = KeyPolicy.from_settings(Settings(demo=True))
    with pytest.raises(KeyRequired, match="Enter your RunAPI key"):
        policy.backend_for(None, demo_url=None)
    policy = KeyPolicy.from_settings(Settings(space_id="me/pg", no_demo=True, api_key="sk-s"))
    with pytest.raises(KeyRequired, match="does not lend its own key"):
        policy.backend_for("   ", DEMO_URL)


@pytest.mark.parametrize("typed", ["sk-abc def", "sk-abc\x00", "sk-\u043a\u043b\u044e\u0447"])
def test_a_typed_key_with_spaces_or_odd_characters_is_refused_before_sending(typed) -> None:
    policy = KeyPolicy.from_settings(Settings())
    with pytest.raises(KeyRequired) as caught:
        policy.backend_for(typed, DEMO_URL)
    assert "Copy the key again" in caught.value.message
    assert typed.strip() not in caught.value.message


def test_the_start_up_line_and_the_page_say_which_policy_is_in_force() -> None:
    local = KeyPolicy.from_settings(Settings(api_key=SERVER_KEY))
    assert local.describe() == (
        "Key policy: local (loopback): visitors without a key of their own generate on "
        "this server's RUNAPI_API_KEY."
    )
    assert local.page_note() == "Generations use this server's RunAPI key."

    space = KeyPolicy.from_settings(Settings(api_key=SERVER_KEY, space_id="me/pg", share=True))
    assert space.describe() == (
        "Key policy: public (SPACE_ID is set (Hugging Face Spaces), --share): visitors bring "
        "their own RunAPI key; without one they get the demo; this server's key is not "
        "shared (set RUNAPI_SHARE_SERVER_KEY=1 or --share-server-key to share it)."
    )
    assert "Without one you get the demo" in space.page_note()

    asked = KeyPolicy.from_settings(Settings(host="0.0.0.0", no_demo=True))
    assert asked.describe() == (
        "Key policy: public (listening on 0.0.0.0, not loopback): visitors bring their own "
        "RunAPI key; without one they are asked for one."
    )
    assert "does not lend its own key" in asked.page_note()

    shared = KeyPolicy.from_settings(
        Settings(api_key=SERVER_KEY, host="0.0.0.0", share_server_key=True)
    )
    assert "shared on purpose" in shared.describe()
    assert "on this server's RunAPI key, within its limits" in shared.page_note()

    demo = KeyPolicy.from_settings(Settings(api_key=SERVER_KEY, demo=True))
    assert demo.describe().startswith("Key policy: demo (--demo)")
    assert demo.page_note().startswith("Demo mode")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_what_counts_as_loopback(host, loopback) -> None:
    assert is_loopback_host(host) is loopback


# -- Login (RUNAPI_UI_AUTH) ---------------------------------------------------------------


def test_no_auth_setting_means_no_login() -> None:
    assert auth_from(Settings()) is None
    assert auth_from(Settings(auth="   ")) is None


def test_logins_from_the_environment() -> None:
    settings = settings_from([], {"RUNAPI_UI_AUTH": "alice:pw-1, bob : p:w:2 "})
    assert auth_from(settings) == [("alice", "pw-1"), ("bob", "p:w:2")]
    assert "pw-1" not in repr(settings)


def test_logins_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "logins.txt"
    path.write_text("# team\n\nalice:pw, with a comma\n  bob:hunter2  \n# carol:old\n")
    assert auth_from(Settings(auth=str(path))) == [
        ("alice", "pw, with a comma"),
        ("bob", "hunter2"),
    ]


@pytest.mark.parametrize(
    ("value", "secret", "problem"),
    [
        ("hunter2", "hunter2", "neither user:pass pairs nor the path of an existing file"),
        ("alice:", None, "entry 1 in RUNAPI_UI_AUTH has no password"),
        (":s3cret", "s3cret", "entry 1 in RUNAPI_UI_AUTH has no user name"),
        ("alice:s3cret,bob", "s3cret", "entry 2 in RUNAPI_UI_AUTH has no ':'"),
        ("alice:s3cret,", "s3cret", "entry 2 in RUNAPI_UI_AUTH has no ':'"),
        ("alice:s3cret,alice:other", "other", "entry 2 in RUNAPI_UI_AUTH repeats the user"),
    ],
)
def test_a_malformed_auth_setting_is_named_without_its_password(value, secret, problem) -> None:
    with pytest.raises(AuthConfigError) as caught:
        auth_from(Settings(auth=value))
    assert problem in str(caught.value)
    if secret:
        assert secret not in str(caught.value)


def test_a_malformed_auth_file_is_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "logins.txt"
    path.write_text("alice:s3cret\n\nbob-without-password\n")
    with pytest.raises(AuthConfigError) as caught:
        auth_from(Settings(auth=str(path)))
    assert str(caught.value).startswith(f"line 3 in {path} has no ':'")
    assert "s3cret" not in str(caught.value)

    path.write_text("# nobody yet\n\n")
    with pytest.raises(AuthConfigError, match="No user:pass line"):
        auth_from(Settings(auth=str(path)))

    path.write_bytes(b"alice:\xff\xfe\n")
    with pytest.raises(AuthConfigError, match="cannot be read"):
        auth_from(Settings(auth=str(path)))
