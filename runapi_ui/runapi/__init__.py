"""Talking to RunAPI, and its local stand-in.

The HTTP client and its errors, the task model and polling, the file API and source
checks, the catalog of models and prices, the simulator that speaks the same contract,
and the worker process that carries RunAPI's traffic. Nothing here knows about runs,
history, pages or agents: it may import only `runapi_ui.translations` and itself.
"""
