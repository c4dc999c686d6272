"""Imagen 4 for agents: the MCP tools and the OpenAI-compatible image endpoints.

They start runs through `runapi_ui.runs` exactly as the page does; may import the
packages below them (runs, storage, runapi, translations), never the page.
"""
