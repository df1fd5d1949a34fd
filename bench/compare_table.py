#!/usr/bin/env python3
"""The table of a before/after script (bench/kafka_compare.sh, bench/http_compare.sh): reads its
rows `binary<TAB>round<TAB>events per second` and prints, per binary, every run and the median as
Markdown. Usage: compare_table.py TSV WHAT (the column's heading, e.g. "… events per CPU-second")."""
import statistics
import sys

runs = {}
for row in open(sys.argv[1]):
    binary, _, eps = row.rstrip("\n").split("\t")
    runs.setdefault(binary, []).append(float(eps))
print(f"| binary | {sys.argv[2]}, each run | median |")
print("|---|---|---|")
for binary, eps in runs.items():
    print(f"| `{binary}` | {', '.join(f'{e:,.0f}' for e in eps)} | {statistics.median(eps):,.0f} |")
