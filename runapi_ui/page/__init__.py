"""The web page and the server: layout, handlers, scripts, script endpoints, launch.

The top of the house: may import every other package; nothing imports it.
"""
