"""RunAPI for the benchmark's figures: the simulator in a process of its own.

    python -m bench.simserver '{"durations": {"imagen-4-fast": [2, 2]}, "seed": 2}'

The real RunAPI runs elsewhere: it shares no interpreter with the app or its visitors,
so neither waits on it for Python's lock. The argument is a `SimulatorConfig` as JSON.
Prints one `ready <url>` line, then serves until stdin closes.
"""

from __future__ import annotations

import json
import sys

from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer


def main(argv: list[str] | None = None) -> None:
    fields = json.loads((sys.argv[1:] if argv is None else argv)[0])
    if "durations" in fields:
        fields["durations"] = {model: tuple(span) for model, span in fields["durations"].items()}
    with SimulatorServer(SimulatorConfig(**fields)) as server:
        print(f"ready {server.url}", flush=True)
        sys.stdin.read()  # the benchmark closes it to stop us


if __name__ == "__main__":
    main()
