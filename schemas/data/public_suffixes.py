#!/usr/bin/env python3
"""Writes schemas/data/public_suffixes.dat, the public suffixes edgelens partitions sites by
(schemas/src/suffix.rs), from a copy of the Public Suffix List (https://publicsuffix.org/list/;
Debian's `publicsuffix` package installs one at /usr/share/publicsuffix/public_suffix_list.dat):
the ICANN section's rules, one per line, comments dropped, labels in IDNA ASCII form (`xn--…`),
as site names are.

    python3 schemas/data/public_suffixes.py /usr/share/publicsuffix/public_suffix_list.dat VERSION

Changing the list moves the partition of some sites' events (those under a suffix added or
removed): run every receiver and `ingest file` on the same list."""

import sys


def ascii_rule(rule):
    prefix = ""
    if rule.startswith("!"):
        prefix, rule = "!", rule[1:]
    labels = [l if l == "*" or l.isascii() else l.encode("idna").decode("ascii") for l in rule.split(".")]
    return prefix + ".".join(labels).lower()


def main():
    src, version = sys.argv[1], sys.argv[2]
    rules, icann = [], False
    with open(src, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "// ===BEGIN ICANN DOMAINS===":
                icann = True
            elif line == "// ===END ICANN DOMAINS===":
                break
            elif icann and line and not line.startswith("//"):
                rules.append(ascii_rule(line.split()[0]))
    out = sys.argv[3] if len(sys.argv) > 3 else "schemas/data/public_suffixes.dat"
    with open(out, "w", encoding="ascii") as f:
        f.write("// This Source Code Form is subject to the terms of the Mozilla Public\n")
        f.write("// License, v. 2.0. If a copy of the MPL was not distributed with this\n")
        f.write("// file, You can obtain one at https://mozilla.org/MPL/2.0/.\n")
        f.write(f"// The ICANN section of the Public Suffix List (https://publicsuffix.org/list/), version {version},\n")
        f.write("// comments removed, labels in IDNA ASCII form. Written by schemas/data/public_suffixes.py.\n")
        for r in rules:
            f.write(r + "\n")
    print(f"{len(rules)} rules", file=sys.stderr)


if __name__ == "__main__":
    main()
