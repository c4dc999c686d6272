"""`python -m bench [--quick] [--only FIGURE ...]`, and
`python -m bench soak [--quick] [--rounds N] [--tracemalloc]`."""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from . import app_figures, noticing, page_figures, report, soak, uploads

FIGURES = {
    "noticing": noticing.measure,
    "app": app_figures.measure,
    "page": page_figures.measure,
    "uploads": uploads.measure,
}


def run_figures(args: argparse.Namespace) -> None:
    started = time.monotonic()
    results: dict = {"mode": "quick" if args.quick else "full", "machine": report.machine()}
    if args.only:
        results["only"] = args.only  # not every figure: not the README's results
    for name in args.only or list(FIGURES):
        print(f"measuring {name} ({results['mode']})…", file=sys.stderr, flush=True)
        results[name] = FIGURES[name](quick=args.quick)
    results["seconds"] = round(time.monotonic() - started, 1)
    print(report.table(results))
    print(
        f"\nwrote {report.write_json(results).relative_to(report.ROOT)} and "
        f"{report.chart(results).relative_to(report.ROOT)} in {results['seconds']:.0f} s"
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["soak"]:
        parser = argparse.ArgumentParser(prog="python -m bench soak", description=soak.__doc__)
        parser.add_argument("--quick", action="store_true", help="about a minute (CI)")
        parser.add_argument(
            "--rounds", type=int, default=1, help="soak the same app this many times"
        )
        parser.add_argument(
            "--tracemalloc",
            action="store_true",
            help="print where the app's Python allocations grew over each round (slower)",
        )
        args = parser.parse_args(argv[1:])
        sys.exit(soak.main(quick=args.quick, rounds=args.rounds, tracemalloc=args.tracemalloc))
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Every speed figure, side by side with its reference in the same run.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller, for CI (~3.5 min)")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), help="these figures only")
    run_figures(parser.parse_args(argv))


if __name__ == "__main__":
    main()
