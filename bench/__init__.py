"""The playground's benchmark: every speed and staying-power figure, side by side.

    python -m bench              # the six figures, ~11 min: a table, bench/results.json
                                 # and the chart docs/bench.png
    python -m bench --quick      # the same figures, smaller, ~3.5 min (CI)
    python -m bench --only page  # some figures only (bench/results-partial.json)
    python -m bench soak         # 50 visitors, 1000 generations with faults, ~2.5 min
    python -m bench soak --quick # the same for about a minute (CI)

Everything runs against the RunAPI simulator on loopback, each figure next to its
reference measured in the same run (the official SDK, a bare Gradio app, the same app
with Gradio's default concurrency, the page with one run or an empty history), because
the machines are shared and noisy: read the ratios, and the spread printed beside them.
"""
