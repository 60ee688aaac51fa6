"""Zeroes the GPU code for every architecture but one in a CUDA library's
.nv_fatbin section, so that the library compresses to a size that can travel
to a GPU machine (libonnxruntime_providers_cuda.so: 284 MB, 185 MB as zstd;
kept for sm_90 alone, 50 MB as xz). Containers that hold no code for the
kept architecture are left whole. The driver picks the kept architecture's
code by its header, so the zeroed entries are never read on that GPU; on any
other GPU the pruned library fails to load its kernels.

  python3 prune_fatbin.py IN OUT --sm 90
"""

import argparse
import collections
import struct
import subprocess

FATBIN_MAGIC = 0xBA55ED50


def fatbin_section(path):
    """(file offset, size) of .nv_fatbin, from readelf."""
    out = subprocess.check_output(["readelf", "-S", "-W", path], text=True)
    for line in out.splitlines():
        if ".nv_fatbin" in line:
            fields = line.split("]", 1)[1].split()
            return int(fields[3], 16), int(fields[4], 16)
    raise SystemExit(f"{path}: no .nv_fatbin section")


def containers(data, offset, size):
    """Each fatbin container's entries: (entry offset, header size, payload
    size, sm). Header layout: u32 magic, u16 version, u16 header size, u64
    size; an entry: u16 kind, u16 version, u32 header size, u32 padded
    payload size, ..., u32 sm at +28."""
    pos, end = offset, offset + size
    while pos < end:
        magic, _, header, fat = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8  # containers are 8-byte aligned
            continue
        entries, e, stop = [], pos + header, pos + header + fat
        while e < stop:
            _, _, eh, padded = struct.unpack_from("<HHII", data, e)
            entries.append((e, eh, padded, struct.unpack_from("<I", data, e + 28)[0]))
            e += eh + padded
        yield entries
        pos = stop


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--sm", type=int, default=90, help="architecture to keep (90: H100, H200)")
    args = ap.parse_args()
    data = bytearray(open(args.input, "rb").read())
    offset, size = fatbin_section(args.input)
    per_sm, zeroed, whole = collections.Counter(), 0, 0
    for entries in containers(data, offset, size):
        for _, _, padded, sm in entries:
            per_sm[sm] += padded
        if not any(sm == args.sm for *_, sm in entries):
            whole += 1
            continue
        for e, eh, padded, sm in entries:
            if sm != args.sm:
                data[e + eh:e + eh + padded] = bytes(padded)
                zeroed += padded
    with open(args.output, "wb") as f:
        f.write(data)
    print(f"code per sm (MiB): { {k: round(v / 2**20, 1) for k, v in sorted(per_sm.items())} }; "
          f"zeroed {zeroed / 2**20:.1f} MiB; {whole} containers without sm_{args.sm} kept whole")


if __name__ == "__main__":
    main()
