"""Alias kept for scripts written against `runapi_ui.client`: the client is `runapi.client`."""

from .runapi.client import *  # noqa: F403
