"""Alias kept for scripts written against `runapi_ui.pnginfo`: it is `storage.pnginfo`."""

from .storage.pnginfo import *  # noqa: F403
