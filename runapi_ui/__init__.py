"""Imagen Playground: Google DeepMind's Imagen 4 through RunAPI, as a Gradio page.

Packages, each importing only those listed before it (`tests/test_architecture.py`):

- `translations`: what the page says, in each language it speaks;
- `runapi`: talking to RunAPI and its local simulator;
- `storage`: images on disk, PNG info, ZIP exports;
- `runs`: what a run is and who may start one; the history of runs;
- `agents`: MCP tools and OpenAI-compatible endpoints;
- `page`: the Gradio page, its handlers and the server.

`runapi_ui.client`, `runapi_ui.pnginfo` and `python -m runapi_ui.worker` stay where the
README first documented them, as thin aliases.
"""
