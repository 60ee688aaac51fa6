"""One step of bench/wakeup.sh and bench/ring_lifts.sh: create (1 KiB
each, O_EXCL), stat or unlink N files named f00000... in a directory, one
at a time; prints the operations per second.

    python3 bench/small_file_step.py DIR N create|stat|unlink
"""

import os
import sys
import time


def main():
    d, n, step = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if step not in ("create", "stat", "unlink"):
        sys.exit(f"small_file_step.py: unknown step {step!r}")
    names = [os.path.join(d, f"f{i:05d}") for i in range(n)]
    data = os.urandom(1024)
    t = time.perf_counter()
    for p in names:
        if step == "create":
            fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
        elif step == "stat":
            os.stat(p)
        else:
            os.unlink(p)
    print(f"{n / (time.perf_counter() - t):.0f}")


if __name__ == "__main__":
    main()
