"""The filesystem benchmark behind bench/fs.sh: the same workloads on an
llmfs mount (release binary, default options), on a plain directory of the
same filesystem, on two FUSE passthroughs of a directory of that
filesystem (Debian's mergerfs with one branch, and bindfs) and, where
FS_BENCH_FLOOR names it, on examples/floor_fs: a daemon that keeps
everything in memory and does nothing else, mounted as llmfs mounts (the
floor: what the kernel's requests cost whatever a daemon does). Every case runs
ROUNDS times, the order of the contenders alternating between rounds so
that load from elsewhere hits all alike; each figure is the best of the
rounds, with the spread ((best - worst) / best). Every figure is a speed
(higher is better); llmfs's is also given as a ratio to the plain directory
and to the best passthrough of the same run.

usage: fs.py LLMFS_BINARY OUT_PREFIX
"""

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SIZE_MIB = int(os.environ.get("FS_BENCH_MIB", "256"))
ROUNDS = int(os.environ.get("FS_BENCH_ROUNDS", "2"))
SMALL_FILES = int(os.environ.get("FS_BENCH_FILES", "10000"))
BIG_DIR = int(os.environ.get("FS_BENCH_DIR_ENTRIES", "20000"))
SMALL_SIZE = 1024
TREE = os.environ.get("FS_BENCH_TREE", "/usr/include")
# "meta": only the metadata cases (small files, cp -r, tar x, rm -rf).
ONLY = os.environ.get("FS_BENCH_ONLY", "all")
PASSTHROUGHS = ("mergerfs", "bindfs")
# fio data: half of each 4 KiB chunk is zeros, the rest random and fresh per
# write, so zstd saves about half (not the trivial all-zero case).
FIO_DATA = ["--buffer_compress_percentage=50", "--buffer_compress_chunk=4096", "--refill_buffers"]


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Plain:
    """A directory of the underlying filesystem."""

    def __init__(self, path):
        self.path = path

    def mount(self):
        pass

    def umount(self):
        pass

    def cold(self):
        drop_caches()


class Llmfs(Plain):
    def __init__(self, binary, store, mnt, extra=()):
        super().__init__(mnt)
        self.binary, self.store, self.extra = binary, store, list(extra)

    def mount(self):
        # The defaults a user gets: compress=background (zstd on write, the
        # model later for blocks unwritten for 10 minutes), 64 MiB cache;
        # the baseline column may add flags of its own.
        run(self.binary, "mount", self.path, "--store", self.store, *self.extra)

    def umount(self):
        run(self.binary, "umount", self.path)

    def cold(self):
        """Empties the llmfs block cache (remount) and the page cache."""
        self.umount()
        drop_caches()
        self.mount()


class Passthrough(Plain):
    """A FUSE passthrough of `branch` mounted on `mnt`, with the options a
    user gets by default."""

    def __init__(self, kind, branch, mnt):
        super().__init__(mnt)
        self.kind, self.branch = kind, branch

    def mount(self):
        if self.kind == "mergerfs":
            run("mergerfs", self.branch, self.path)
        else:
            run("bindfs", self.branch, self.path)

    def umount(self):
        run("fusermount3" if shutil.which("fusermount3") else "fusermount", "-u", self.path)


class Floor(Plain):
    """examples/floor_fs on `mnt`, over the transport llmfs gets. Its
    files live in its memory: a cold case drops the kernel's page cache
    only, so its cold reads cost the round trips without a disk."""

    def __init__(self, binary, mnt):
        super().__init__(mnt)
        self.binary, self.proc = binary, None

    def mount(self):
        self.proc = subprocess.Popen([self.binary, self.path])
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"floor_fs exited with {self.proc.returncode}")
            time.sleep(0.05)

    def umount(self):
        run("umount", self.path)
        self.proc.wait()


def fio(directory, name, rw, bs, *extra):
    cmd = ["fio", f"--name={name}", f"--directory={directory}", "--filename=seqfile",
           f"--size={SIZE_MIB}M", f"--rw={rw}", f"--bs={bs}", "--ioengine=psync",
           "--output-format=json", *(FIO_DATA if rw == "write" else []), *extra]
    job = json.loads(run(*cmd, capture_output=True, text=True).stdout)["jobs"][0]
    side = job["write"] if rw in ("write", "randwrite") else job["read"]
    return {"MB/s": side["bw_bytes"] / 1e6, "IOPS": side["iops"]}


def fio_pair(directory, rw, *extra):
    """Two jobs at once, each on its own file (par.0.0 and par.1.0): two
    writers, or two readers of what the writers left."""
    cmd = ["fio", "--name=par", f"--directory={directory}", "--numjobs=2", "--group_reporting",
           f"--size={SIZE_MIB // 2}M", f"--rw={rw}", "--bs=1M", "--ioengine=psync",
           "--output-format=json", *(FIO_DATA if rw == "write" else []), *extra]
    job = json.loads(run(*cmd, capture_output=True, text=True).stdout)["jobs"][0]
    side = job["write"] if rw == "write" else job["read"]
    return {"MB/s": side["bw_bytes"] / 1e6}


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


def timed(cmd, tree_bytes):
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


def summarise(runs):
    """Best and spread of each metric over the rounds."""
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        best = max(vals)
        out[k] = {"best": best, "spread": (best - min(vals)) / best if best else 0.0, "runs": vals}
    return out


def version(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr) else "unknown"


def data_cases(case):
    """The fio cases (FS_BENCH_ONLY=data runs only these)."""
    case(f"sequential write {SIZE_MIB} MiB (1 MiB writes, fsync at end)",
         lambda t: fio(t, "seqwrite", "write", "1M", "--end_fsync=1"))
    case("sequential read, cold cache", lambda t: fio(t, "seqread", "read", "1M"), cold=True)
    # Warm: what was just read is read again. fio drops a file's cached
    # pages before it starts unless told not to (--invalidate=0). One pass
    # takes about 30 ms from the plain directory's cache, too short to
    # time (fio's clock counts whole milliseconds), so the file is read
    # over and over for 5 s.
    case("sequential read, warm cache (5 s)",
         lambda t: fio(t, "seqread", "read", "1M", "--invalidate=0", "--runtime=5", "--time_based"))
    case("4 KiB random read, cold cache (16 MiB of reads)",
         lambda t: fio(t, "randread", "randread", "4k", "--io_size=16M"), cold=True)

    def warm_random(t):
        run("cat", os.path.join(t, "seqfile"), stdout=subprocess.DEVNULL)
        return fio(t, "randread", "randread", "4k", "--runtime=5", "--time_based", "--invalidate=0")
    case("4 KiB random read, warm cache (5 s)", warm_random)
    case(f"parallel: 2 writers, {SIZE_MIB // 2} MiB each (fsync at end)",
         lambda t: fio_pair(t, "write", "--end_fsync=1"))
    case("parallel: 2 readers of those files, cold cache", lambda t: fio_pair(t, "read"), cold=True)


def big_directory(directory):
    """Lists a directory of BIG_DIR empty files, names only (as `ls` or
    `find` do: the kernel caches no directory pages for FUSE, so each
    listing asks the filesystem), then with a stat of each entry (as
    `ls -l` does); the files are made once, untimed."""
    d = os.path.join(directory, "big")
    if not os.path.isdir(d):
        os.mkdir(d)
        for i in range(BIG_DIR):
            open(os.path.join(d, f"file-with-a-longish-name-{i:06d}"), "wb").close()
    t = time.perf_counter()
    n = len(os.listdir(d))
    names = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for e in os.scandir(d):
        e.stat()
    stats = n / (time.perf_counter() - t)
    return {"names listed/s": names, "entries listed and stat'ed/s": stats}


def path_search(directory):
    """A compiler's include-path search (as bench/path_search.sh): 8
    directories of 200 files; each name is looked for in the directories
    in order, so 5,600 lookups fail and 1,600 find the file per pass. The
    first pass, then a second (a filesystem that keeps failed lookups
    answers those from the kernel's cache)."""
    # A fresh tree each round: a later round's first pass would find the
    # failed lookups of the round before still cached.
    top = tempfile.mkdtemp(prefix="search-", dir=directory)
    dirs = [os.path.join(top, f"inc{d}") for d in range(8)]
    for d, p in enumerate(dirs):
        os.mkdir(p)
        for i in range(200):
            open(os.path.join(p, f"h{d}_{i}.h"), "wb").close()
    names = [f"h{d}_{i}.h" for i in range(200) for d in range(8)]
    res = {}
    for label in ("first pass lookups/s", "second pass lookups/s"):
        n = 0
        t = time.perf_counter()
        for name in names:
            for p in dirs:
                n += 1
                try:
                    os.stat(os.path.join(p, name))
                    break
                except FileNotFoundError:
                    pass
        res[label] = n / (time.perf_counter() - t)
    shutil.rmtree(top)
    return res


def meta_cases(case, targets, work):
    """The metadata cases (FS_BENCH_ONLY=meta runs only these)."""
    for t in targets.values():
        for f in os.listdir(t.path):
            os.unlink(os.path.join(t.path, f))
    case(f"create/stat/unlink {SMALL_FILES} files", small_files)
    case(f"list a directory of {BIG_DIR} files", big_directory)
    case("search 8 directories in order for 1,600 names", path_search)
    tree_bytes, tree_files = tree_size(TREE)
    tarball = os.path.join(work, "tree.tar")
    run("tar", "cf", tarball, "-C", os.path.dirname(TREE), os.path.basename(TREE))
    tree = f"{TREE} ({tree_files} files, {tree_bytes / 1e6:.0f} MB)"

    def copy(t):
        shutil.rmtree(os.path.join(t, "cp"), ignore_errors=True)
        return timed(["cp", "-r", TREE, os.path.join(t, "cp")], tree_bytes)
    case(f"cp -r {tree}", copy)

    def untar(t):
        shutil.rmtree(os.path.join(t, "tarx"), ignore_errors=True)
        os.mkdir(os.path.join(t, "tarx"))
        return timed(["tar", "xf", tarball, "-C", os.path.join(t, "tarx")], tree_bytes)
    case(f"tar x of {tree}", untar)

    def remove(t):
        # Removes the copy that cp -r left, then puts it back for the
        # next round (untimed).
        src = os.path.join(t, "cp")
        r = timed(["rm", "-rf", src], tree_bytes)
        run("cp", "-r", TREE, src)
        return r
    case(f"rm -rf of the cp -r copy of {TREE}", remove)


def main():
    binary, prefix = os.path.abspath(sys.argv[1]), sys.argv[2]
    base = os.environ.get("FS_BENCH_DIR", "/var/tmp")
    work = tempfile.mkdtemp(prefix="llmfs-fsbench.", dir=base)
    dirs = {n: os.path.join(work, n) for n in ("plain", "store", "mnt", "mergerfs.branch",
                                               "mergerfs", "bindfs.branch", "bindfs")}
    for n, d in dirs.items():
        if n != "store":
            os.mkdir(d)
    fs_type = run("stat", "-f", "-c", "%T", work, capture_output=True, text=True).stdout.strip()
    targets = {"plain": Plain(dirs["plain"]), "llmfs": Llmfs(binary, dirs["store"], dirs["mnt"])}
    baseline = os.environ.get("FS_BENCH_BASELINE")
    if baseline:
        # Another llmfs build (the one before a change), or the same one with
        # other mount flags (FS_BENCH_BASELINE_ARGS), as one more column.
        for n in ("base.store", "base"):
            dirs[n] = os.path.join(work, n)
        os.mkdir(dirs["base"])
        extra = os.environ.get("FS_BENCH_BASELINE_ARGS", "").split()
        targets["llmfs baseline"] = Llmfs(os.path.abspath(baseline), dirs["base.store"], dirs["base"], extra)
    pg = os.environ.get("FS_BENCH_PG")
    if pg:
        # The same llmfs with its volume in PostgreSQL (a schema of its own,
        # dropped at the end), as one more column.
        schema = f"fsbench_{os.getpid()}"
        pg_store = f"{pg}{'&' if '?' in pg else '?'}schema={schema}"
        dirs["pg"] = os.path.join(work, "pg")
        os.mkdir(dirs["pg"])
        targets["llmfs postgres"] = Llmfs(binary, pg_store, dirs["pg"])
    floor = os.environ.get("FS_BENCH_FLOOR")
    if floor:
        dirs["floor"] = os.path.join(work, "floor")
        os.mkdir(dirs["floor"])
        targets["floor"] = Floor(os.path.abspath(floor), dirs["floor"])
    for kind in PASSTHROUGHS:
        if shutil.which(kind):
            targets[kind] = Passthrough(kind, dirs[kind + ".branch"], dirs[kind])
        else:
            print(f"fs.py: {kind} is not installed; its column stays empty", file=sys.stderr)
    # A SIGTERM unwinds through the `finally` below, which unmounts.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    mounted = []
    for t in targets.values():
        t.mount()
        mounted.append(t)
    started = time.time()
    raw = {}
    order = list(targets)

    def case(test, fn, cold=False):
        """Runs fn(target) ROUNDS times on every contender, alternating the
        order between rounds."""
        raw[test] = {n: [] for n in order}
        for r in range(ROUNDS):
            for n in (order if r % 2 == 0 else order[::-1]):
                if cold:
                    targets[n].cold()
                raw[test][n].append(fn(targets[n].path))
        print(test, json.dumps({n: raw[test][n] for n in order}), flush=True)

    try:
        if ONLY in ("all", "data"):
            data_cases(case)
        if ONLY in ("all", "meta"):
            meta_cases(case, targets, work)
        stats = json.loads(run(binary, "stats", targets["llmfs"].path, "--json",
                               capture_output=True, text=True).stdout)
    finally:
        for t in mounted:
            try:
                t.umount()
            except subprocess.CalledProcessError:
                run("umount", "-l", t.path)
        if pg:
            run("psql", "-q", pg.split("?")[0], "-c",
                f"SET client_min_messages = warning; DROP SCHEMA IF EXISTS {schema} CASCADE")
    seconds = time.time() - started
    shutil.rmtree(work)
    results = {}
    for test, per in raw.items():
        r = {n: summarise(runs) for n, runs in per.items()}
        ratio = {}
        for k in r["llmfs"]:
            best = r["llmfs"][k]["best"]
            ratio[k] = {"plain": best / r["plain"][k]["best"]}
            peers = [r[n][k]["best"] for n in PASSTHROUGHS if n in r]
            if peers:
                ratio[k]["best passthrough"] = best / max(peers)
                if "floor" in r:
                    ratio[k]["floor / best passthrough"] = r["floor"][k]["best"] / max(peers)
            if "llmfs postgres" in r:
                ratio[k]["postgres / sqlite"] = r["llmfs postgres"][k]["best"] / best
        r["ratio"] = ratio
        results[test] = r
    fio_version = run("fio", "--version", capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {
        "tool": "bench/fs.sh", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 1), "machine": machine(), "filesystem": fs_type,
        "scratch": os.environ.get("FS_BENCH_SCRATCH", f"a directory of {base}"), "fio": fio_version,
        "mergerfs": version(["mergerfs", "--version"]), "bindfs": version(["bindfs", "--version"]),
        "llmfs_commit": commit, "rounds": ROUNDS,
        "llmfs_mount": "llmfs mount MNT --store STORE (defaults: compress=background, archive_after=10m, cache_mb=64, threads=one per core (2..8), block_size=65536)",
        "passthroughs": "mergerfs BRANCH MNT; bindfs BRANCH MNT (default options)",
        "floor": ("examples/floor_fs MNT (everything in its memory, mounted as llmfs mounts)"
                  if floor else None),
        "llmfs_postgres": (f"llmfs mount MNT --store {pg}&schema=... (the same defaults; "
                           f"{version(['psql', '--version'])} server on this machine)") if pg else None,
        "data": "fio buffer_compress_percentage=50, buffer_compress_chunk=4096, refill_buffers",
        "cold": "page cache dropped (echo 3 > /proc/sys/vm/drop_caches); llmfs also remounted (empty block cache)",
        "seq_file_mib": SIZE_MIB, "results": results, "llmfs_stats_after": stats,
    }
    with open(prefix + ".json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    cols = [n for n in order]
    lines = [f"bench/fs.sh, {doc['date']}, {seconds:.0f} s, best of {ROUNDS} alternating rounds "
             f"(spread in brackets); {doc['machine']['cores']} cores, {doc['machine']['cpu_model']}; "
             f"{fs_type} ({doc['scratch']}); {fio_version}; {doc['mergerfs']}; {doc['bindfs']}  ",
             "", "| test | metric | " + " | ".join(cols) + " | llmfs / plain | llmfs / best passthrough |"
             + (" floor / best passthrough |" if floor else "")
             + (" llmfs postgres / llmfs |" if pg else ""),
             "|---|---|" + "---:|" * (len(cols) + 2 + (1 if floor else 0) + (1 if pg else 0))]
    for test, r in results.items():
        for k in r["llmfs"]:
            cells = [f"{r[n][k]['best']:.1f} ({100 * r[n][k]['spread']:.0f}%)" for n in cols]
            bp = r["ratio"][k].get("best passthrough")
            fl = r["ratio"][k].get("floor / best passthrough")
            pgr = r["ratio"][k].get("postgres / sqlite")
            lines.append(f"| {test} | {k} | " + " | ".join(cells) +
                         f" | {r['ratio'][k]['plain']:.2f} | " + (f"{bp:.2f}" if bp else "-") + " |"
                         + ((f" {fl:.2f} |" if fl else " - |") if floor else "")
                         + (f" {pgr:.2f} |" if pgr else ""))
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
