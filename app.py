"""Imagen Playground: Google DeepMind's Imagen 4 through RunAPI, in the browser.

    python app.py              # http://127.0.0.1:7860, demo mode without RUNAPI_API_KEY
    python app.py --share      # also a temporary public link
    python app.py --demo       # always the built-in simulator

The app itself lives in `runapi_ui/`: settings, client, simulator, playground, ui, server.
"""

from runapi_ui.page.server import main
from runapi_ui.runs.settings import settings_from

if __name__ == "__main__":
    main(settings_from())
