#!/usr/bin/env python3
"""bench/write_stall.sh's probe: open PATH, read its first 4 KiB, close it,
every millisecond until the file STOP exists; prints the latencies in
milliseconds, tab-separated: median, 99th percentile, largest, how many
took over 50 ms, how many probes ran. The open and the close always reach
the daemon (OPEN, FLUSH, RELEASE); the kernel keeps attributes and pages
cached, so a plain stat or a read of cached pages would not."""
import os
import sys
import time

path, stop = sys.argv[1], sys.argv[2]
lat = []
while not os.path.exists(stop):
    t = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    os.pread(fd, 4096, 0)
    os.close(fd)
    lat.append((time.perf_counter() - t) * 1000)
    time.sleep(0.001)
lat.sort()
n = len(lat)
pick = lambda q: lat[min(n - 1, int(q * n))]
print("\t".join([f"{pick(0.5):.3f}", f"{pick(0.99):.2f}", f"{lat[-1]:.1f}",
                 str(sum(1 for x in lat if x > 50)), str(n)]))
