"""The filesystem benchmark behind bench/fs.sh: the same workloads on an
llmfs mount (release binary, default options) and on a plain directory of
the same filesystem, interleaved test by test so that load from elsewhere
hits both alike. Every figure is a speed (higher is better) and each llmfs
figure is also given as a ratio to the plain directory.

usage: fs.py LLMFS_BINARY OUT_PREFIX
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

SIZE_MIB = int(os.environ.get("FS_BENCH_MIB", "512"))
SMALL_FILES = 10_000
SMALL_SIZE = 1024
TREE = os.environ.get("FS_BENCH_TREE", "/usr/include")
# fio data: half of each 4 KiB chunk is zeros, the rest random and fresh per
# write, so zstd saves about half (not the trivial all-zero case).
FIO_DATA = ["--buffer_compress_percentage=50", "--buffer_compress_chunk=4096", "--refill_buffers"]


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Llmfs:
    def __init__(self, binary, store, mnt):
        self.binary, self.store, self.mnt = binary, store, mnt

    def mount(self):
        # The defaults a user gets: compress=background (zstd on write, the
        # model later for blocks unwritten for 10 minutes), 64 MiB cache.
        run(self.binary, "mount", self.mnt, "--store", self.store)

    def umount(self):
        run(self.binary, "umount", self.mnt)

    def cold(self):
        """Empties the llmfs block cache (remount) and the page cache."""
        self.umount()
        drop_caches()
        self.mount()


def fio(directory, name, rw, bs, *extra):
    cmd = ["fio", f"--name={name}", f"--directory={directory}", "--filename=seqfile",
           f"--size={SIZE_MIB}M", f"--rw={rw}", f"--bs={bs}", "--ioengine=psync",
           "--output-format=json", *(FIO_DATA if rw == "write" else []), *extra]
    job = json.loads(run(*cmd, capture_output=True, text=True).stdout)["jobs"][0]
    side = job["write"] if rw in ("write", "randwrite") else job["read"]
    return {"MB/s": side["bw_bytes"] / 1e6, "IOPS": side["iops"]}


def small_files(directory):
    d = os.path.join(directory, "meta")
    os.mkdir(d)
    names = [os.path.join(d, f"f{i:05d}") for i in range(SMALL_FILES)]
    data = os.urandom(SMALL_SIZE)
    res = {}
    t = time.perf_counter()
    for n in names:
        fd = os.open(n, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
    res["create 1 KiB files/s"] = SMALL_FILES / (time.perf_counter() - t)
    t = time.perf_counter()
    for n in names:
        os.stat(n)
    res["stat/s"] = SMALL_FILES / (time.perf_counter() - t)
    t = time.perf_counter()
    for n in names:
        os.unlink(n)
    res["unlink/s"] = SMALL_FILES / (time.perf_counter() - t)
    os.rmdir(d)
    return res


def timed_tree(cmd, tree_bytes):
    """Runs cmd: the time until the prompt returns. No sync: a global sync
    would also flush what other processes wrote. (The plain directory's
    writes may still be in the page cache; llmfs has written each file to
    its store when it was closed.)"""
    t = time.perf_counter()
    run(*cmd)
    return {"MB/s": tree_bytes / 1e6 / (time.perf_counter() - t)}


def tree_size(path):
    total, files = 0, 0
    for root, _, names in os.walk(path):
        for n in names:
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
                files += 1
    return total, files


def machine():
    flags = []
    model = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and model == "unknown":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            present = line.split(":", 1)[1].split()
            flags = [f for f in ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"] if f in present]
            break
    return {"cores": os.cpu_count(), "cpu_model": model, "cpu_flags": flags, "kernel": platform.release(),
            "host": platform.node()}


def main():
    binary, prefix = os.path.abspath(sys.argv[1]), sys.argv[2]
    base = os.environ.get("FS_BENCH_DIR", "/var/tmp")
    work = tempfile.mkdtemp(prefix="llmfs-fsbench.", dir=base)
    plain, store, mnt = (os.path.join(work, n) for n in ("plain", "store", "mnt"))
    for d in (plain, mnt):
        os.mkdir(d)
    fs_type = run("stat", "-f", "-c", "%T", work, capture_output=True, text=True).stdout.strip()
    vol = Llmfs(binary, store, mnt)
    vol.mount()
    started = time.time()
    results = {}

    def both(test, fn):
        """Runs fn(target) on the plain directory, then on llmfs."""
        results[test] = {"plain": fn(plain, "plain"), "llmfs": fn(mnt, "llmfs")}
        print(test, json.dumps(results[test]), flush=True)

    def cold_then(fn):
        def f(target, which):
            if which == "llmfs":
                vol.cold()
            else:
                drop_caches()
            return fn(target)
        return f

    try:
        both(f"sequential write {SIZE_MIB} MiB (1 MiB writes, fsync at end)",
             lambda t, _: fio(t, "seqwrite", "write", "1M", "--end_fsync=1"))
        both("sequential read, cold cache",
             cold_then(lambda t: fio(t, "seqread", "read", "1M")))
        both("sequential read, warm cache",
             lambda t, _: fio(t, "seqread", "read", "1M"))
        both("4 KiB random read, cold cache (32 MiB of reads)",
             cold_then(lambda t: fio(t, "randread", "randread", "4k", "--io_size=32M")))

        def warm_random(t, _):
            run("cat", os.path.join(t, "seqfile"), stdout=subprocess.DEVNULL)
            return fio(t, "randread", "randread", "4k", "--runtime=10", "--time_based")
        both("4 KiB random read, warm cache (10 s)", warm_random)
        both(f"create/stat/unlink {SMALL_FILES} files", lambda t, _: small_files(t))
        tree_bytes, tree_files = tree_size(TREE)
        tarball = os.path.join(work, "tree.tar")
        run("tar", "cf", tarball, "-C", os.path.dirname(TREE), os.path.basename(TREE))
        both(f"cp -r {TREE} ({tree_files} files, {tree_bytes / 1e6:.0f} MB)",
             lambda t, _: timed_tree(["cp", "-r", TREE, os.path.join(t, "cp")], tree_bytes))

        def untar(t, _):
            os.mkdir(os.path.join(t, "tarx"))
            return timed_tree(["tar", "xf", tarball, "-C", os.path.join(t, "tarx")], tree_bytes)
        both(f"tar x of {TREE}", untar)
        stats = json.loads(run(binary, "stats", mnt, "--json", capture_output=True, text=True).stdout)
    finally:
        try:
            vol.umount()
        except subprocess.CalledProcessError:
            run("umount", "-l", mnt)
    seconds = time.time() - started
    shutil.rmtree(work)
    for r in results.values():
        r["ratio"] = {k: r["llmfs"][k] / r["plain"][k] for k in r["plain"]}
    fio_version = run("fio", "--version", capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {
        "tool": "bench/fs.sh", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 1), "machine": machine(), "filesystem": fs_type, "fio": fio_version,
        "llmfs_commit": commit,
        "llmfs_mount": "llmfs mount MNT --store STORE (defaults: compress=background, archive_after=10m, cache_mb=64, threads=4, block_size=65536)",
        "data": "fio buffer_compress_percentage=50, buffer_compress_chunk=4096, refill_buffers",
        "cold": "page cache dropped (echo 3 > /proc/sys/vm/drop_caches); llmfs also remounted (empty block cache)",
        "seq_file_mib": SIZE_MIB, "results": results, "llmfs_stats_after": stats,
    }
    with open(prefix + ".json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    lines = [f"bench/fs.sh, {doc['date']}, {seconds:.0f} s; {doc['machine']['cores']} cores, "
             f"{doc['machine']['cpu_model']} ({' '.join(doc['machine']['cpu_flags'])}); {fs_type}; {fio_version}  ",
             "", "| test | metric | plain | llmfs | llmfs / plain |", "|---|---|---:|---:|---:|"]
    for test, r in results.items():
        for k in r["plain"]:
            lines.append(f"| {test} | {k} | {r['plain'][k]:.1f} | {r['llmfs'][k]:.1f} | {r['ratio'][k]:.2f} |")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
