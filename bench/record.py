"""Machine-readable results of the bench scripts: when EDGELENS_BENCH_JSON names a file, each
measurement is appended to it as one JSON object per line (bench/run.sh collects them for the plot
and the summary). Without it, recording does nothing."""
import json
import os


def record(bench, **fields):
    path = os.environ.get("EDGELENS_BENCH_JSON")
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps({"bench": bench, **fields}) + "\n")
