#!/usr/bin/env python3
"""The sizes of the page-cache folios that hold each FILE, as JSON on
stdout: pages, folios and the mean folio in KiB.

Maps the file, touches every page (a cached page is mapped without I/O),
reads each page's frame number from /proc/self/pagemap and that frame's
flags from /proc/kpageflags (root): a page of a large folio is a compound
head or a compound tail (bits 15 and 16), so the folios are the pages
less the tails. Used by bench/warm_read.sh to show why a warm read of a
FUSE file is slower than one of ext4's: the kernel keeps ext4's cached
file in large folios and FUSE's in single pages.

    bench/page_cache_folios.py FILE [FILE ...]     (root)
"""
import json
import mmap
import os
import struct
import sys

PAGE = mmap.PAGESIZE
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63
COMPOUND_TAIL = 1 << 16


def mapping_start(path):
    real = os.path.realpath(path)
    for line in open("/proc/self/maps"):
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].rstrip("\n") == real:
            return int(fields[0].split("-")[0], 16)
    raise SystemExit(f"{path}: mapping not found in /proc/self/maps")


def folios(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pages = size // PAGE
        if pages == 0:
            return {"file": path, "pages": 0, "folios": 0, "mean_folio_kib": 0.0}
        m = mmap.mmap(fd, pages * PAGE, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    for off in range(0, pages * PAGE, PAGE):
        m[off]
    start = mapping_start(path)
    mapped = tails = 0
    with open("/proc/self/pagemap", "rb") as pagemap, open("/proc/kpageflags", "rb") as flags:
        for i in range(pages):
            pagemap.seek((start // PAGE + i) * 8)
            entry = struct.unpack("<Q", pagemap.read(8))[0]
            if not entry & PRESENT:
                continue
            mapped += 1
            flags.seek((entry & PFN_MASK) * 8)
            if struct.unpack("<Q", flags.read(8))[0] & COMPOUND_TAIL:
                tails += 1
    m.close()
    count = mapped - tails
    return {"file": path, "pages": mapped, "folios": count,
            "mean_folio_kib": round(mapped * PAGE / 1024 / count, 1) if count else 0.0}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for p in sys.argv[1:]:
        print(json.dumps(folios(p)))
