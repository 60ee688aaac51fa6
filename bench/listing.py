#!/usr/bin/env python3
"""Lists a directory of 20000 empty files on a mounted volume: names only
(`ls`, `find`), then with a stat of each entry (`ls -l`); best of 3 of
each. The files are made on the first run in DIR/big and kept.

    python3 bench/listing.py DIR

Used for the PostgreSQL figures of the listing index (docs/MEASUREMENTS.md,
"Overwrites and directory listings"); bench/fs.sh has the same case
against a plain directory and FUSE passthroughs."""
import os
import sys
import time

ENTRIES = 20000


def main():
    d = os.path.join(sys.argv[1], "big")
    if not os.path.isdir(d):
        os.mkdir(d)
        for i in range(ENTRIES):
            open(os.path.join(d, f"file-with-a-longish-name-{i:06d}"), "wb").close()
    names = stats = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        os.listdir(d)
        names = min(names, time.perf_counter() - t)
        t = time.perf_counter()
        for e in os.scandir(d):
            e.stat()
        stats = min(stats, time.perf_counter() - t)
    print(f"names listed: {names * 1000:.0f} ms; listed and stat'ed: {stats * 1000:.0f} ms")


if __name__ == "__main__":
    main()
