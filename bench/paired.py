"""Paired ratios from a bench TSV whose lines are build, round, case,
seconds, ... (bench/small_files.sh, bench/seqwrite.sh's MiB/s as well):
per case, each build's values and median, and for every build after the
first its value over the first build's in the same round, with the
median of those ratios. On this machine one contender's times move by a
third between rounds while builds run alternately, so a round's pair
shares most of its noise: the paired ratios show a difference of a few
percent that the spreads hide.

    python3 bench/paired.py RESULTS.tsv
"""

import statistics
import sys
from collections import defaultdict


def main():
    values = defaultdict(dict)  # case -> build -> {round: value}
    builds = []
    for line in open(sys.argv[1]):
        fields = line.rstrip("\n").split("\t")
        if line.startswith("#") or len(fields) < 4 or fields[0] == "build":
            continue
        build, rnd, case, value = fields[0], fields[1], fields[2], float(fields[3])
        values[case].setdefault(build, {})[rnd] = value
        if build not in builds:
            builds.append(build)
    for case, by_build in values.items():
        first = builds[0]
        for build in builds:
            if build not in by_build:
                continue
            vals = by_build[build]
            line = f"{case}\t{build}\t" + " ".join(f"{v:.3f}" for v in vals.values())
            line += f"\tmedian {statistics.median(vals.values()):.3f}"
            if build != first and first in by_build:
                ratios = [v / by_build[first][r] for r, v in vals.items() if r in by_build[first]]
                if ratios:
                    line += "\tover the first: " + " ".join(f"{x:.2f}" for x in ratios)
                    line += f"\tmedian {statistics.median(ratios):.3f}"
            print(line)


if __name__ == "__main__":
    main()
