#!/usr/bin/env python3
"""Converts fetched media to the raw forms llmfs stores (bench/media/fetch.sh).

    convert.py SRC_DIR OUT_DIR PINNED > MANIFEST

Images become PGM (grayscale) or PPM (RGB), a few also BMP; recordings stay
WAV (PCM, as decoded). Each output's sha256 is checked against PINNED (lines
"name sha256") when it names the file; a mismatch is an error, so the bench
always runs on the same bytes. MANIFEST lines: name kind source licence sha256.
"""
import hashlib
import os
import sys

from PIL import Image

SKIMAGE = "PyPI scikit-image 0.26.0 skimage/data"
SKIMAGE_LIC = "BSD-3/CC0/public domain (skimage/data/README.txt)"
SIPI = "USC-SIPI/Kodak via github eeshsaxena/HMRDH-ITS-Implementation@1f309ad"
IMAGES = [
    # (source path under SRC_DIR, source, licence)
    ("skimage/data/camera.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/coins.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/moon.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/brick.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/grass.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/gravel.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/chelsea.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/coffee.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/motorcycle_left.png", SKIMAGE, SKIMAGE_LIC),
    ("skimage/data/ihc.png", SKIMAGE, SKIMAGE_LIC),
]
# The same repository's kodim*.png are left out: their pixels are not the
# Kodak photos' (MED residual entropy 6-7.3 bits against 4 or less for the
# originals, above PNG's own rate), presumably altered by that project's
# data-hiding experiments.
KODAK = ["airplane.tiff", "baboon.tiff", "boat.tiff", "peppers.tiff"]
KODAK_LIC = "Kodak: free for research use; USC-SIPI: research use"
ALSA = "Debian alsa-utils /usr/share/sounds/alsa"
ALSA_LIC = "GPL-2+ (alsa-utils)"
SONIC = "Debian sonic-pi-samples 3.2.2 (FLAC, decoded losslessly)"
SONIC_LIC = "CC0 (freesound.org, see the package's copyright)"
# Written also as BMP, to bench that header and its bottom-up rows.
AS_BMP = {"camera", "chelsea"}


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def main():
    src, out, pinned_path = sys.argv[1:4]
    pinned = {}
    if os.path.exists(pinned_path):
        for line in open(pinned_path):
            name, digest = line.split()
            pinned[name] = digest
    rows = []

    def emit(name, kind, source, lic):
        path = os.path.join(out, name)
        digest = sha(path)
        if name in pinned and pinned[name] != digest:
            sys.exit(f"convert: {name} has sha256 {digest}, pinned {pinned[name]}")
        rows.append(f"{name} {kind} {source.replace(' ', '_')} {lic.replace(' ', '_')} {digest}")

    images = list(IMAGES)
    if os.path.isdir(os.path.join(src, "kodak")):  # the SIPI photos
        images += [("kodak/" + f, SIPI, KODAK_LIC) for f in KODAK]
    for rel, source, lic in images:
        im = Image.open(os.path.join(src, rel))
        im = im.convert("L") if im.mode in ("L", "1", "LA") else im.convert("RGB")
        stem = os.path.splitext(os.path.basename(rel))[0]
        ext = "pgm" if im.mode == "L" else "ppm"
        im.save(os.path.join(out, f"{stem}.{ext}"))
        emit(f"{stem}.{ext}", "image", source, lic)
        if stem in AS_BMP:
            im.save(os.path.join(out, f"{stem}.bmp"))
            emit(f"{stem}.bmp", "image", source, lic)
    for f in sorted(os.listdir(os.path.join(src, "usr/share/sounds/alsa"))):
        if f == "Noise.wav":  # generated noise, not a recording
            continue
        data = open(os.path.join(src, "usr/share/sounds/alsa", f), "rb").read()
        open(os.path.join(out, f), "wb").write(data)
        emit(f, "audio", ALSA, ALSA_LIC)
    for f in sorted(os.listdir(src)):
        if f.endswith(".wav"):
            data = open(os.path.join(src, f), "rb").read()
            open(os.path.join(out, f), "wb").write(data)
            emit(f, "audio", SONIC, SONIC_LIC)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
