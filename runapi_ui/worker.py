"""`python -m runapi_ui.worker`, as first documented: runs `runapi_ui.runapi.worker`."""

from .runapi.worker import main

if __name__ == "__main__":
    main()
