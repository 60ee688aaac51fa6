#!/usr/bin/env bash
# Evaluation data for the media codec (issue 18): real lossless photos and
# 16-bit PCM recordings, converted to the raw forms llmfs stores (PGM/PPM,
# BMP, WAV). Evaluation only: never train on these.
#
#   bench/media/fetch.sh [CACHE]        (default ~/.cache/llmfs-media)
#
# Sources (registries only, pinned by the sha256 of every raw file made):
#   - PyPI scikit-image 0.26.0: its bundled photos (PNG, lossless origins;
#     the JPEG-derived astronaut/rocket/retina are left out).
#   - Debian alsa-utils: /usr/share/sounds/alsa/*.wav, recorded speech,
#     16-bit 48 kHz mono.
#   - Debian sonic-pi-samples: CC0 instrument and loop recordings (FLAC,
#     decoded losslessly to WAV).
#   - Optional: SIPI_REPO=<git dir> of a public repository holding USC-SIPI
#     photos under data/kodak/ (airplane, baboon, boat, peppers; the one used for the
#     committed results: github eeshsaxena/HMRDH-ITS-Implementation at
#     1f309adf06494ff9c5772591b6ba4a10d3f0ba2b, fetched with the search
#     tool's fetch); skipped when unset.
#
# Idempotent: files already present with the pinned digest are kept. Writes
# CACHE/raw/* and CACHE/MANIFEST (name, kind, source, licence, sha256).
set -euo pipefail
cache=${1:-${MEDIA_CACHE:-$HOME/.cache/llmfs-media}}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache/dl" "$cache/raw"
cd "$cache/dl"

for tool in flac python3; do
  command -v "$tool" >/dev/null || { apt-get install -y -qq "$tool" >/dev/null; }
done
python3 -c "import PIL" 2>/dev/null || python3 -m pip install -q pillow==11.3.0 \
  || python3 -m pip install -q --break-system-packages pillow==11.3.0

if ! ls scikit_image-0.26.0-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --only-binary=:all: scikit-image==0.26.0 -d .
fi
for pkg in alsa-utils sonic-pi-samples; do
  ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "$pkg" 2>/dev/null
done

rm -rf x && mkdir x
unzip -q -o scikit_image-0.26.0-*.whl 'skimage/data/*' -d x
for d in alsa-utils_*.deb sonic-pi-samples_*.deb; do dpkg-deb -x "$d" x; done
if [ -n "${SIPI_REPO:-}" ]; then
  mkdir -p x/kodak
  for f in airplane.tiff baboon.tiff boat.tiff peppers.tiff; do
    git --git-dir="$SIPI_REPO" show "1f309adf06494ff9c5772591b6ba4a10d3f0ba2b:data/kodak/$f" \
      > "x/kodak/$f"
  done
fi
for f in ambi_piano ambi_choir ambi_lunar_land ambi_drone bass_voxy_c guitar_harmonics \
         guitar_e_fifths loop_amen_full loop_industrial loop_compus drum_roll; do
  src=x/usr/share/sonic-pi/samples/$f.flac
  [ -f "$src" ] && flac -s -d -f "$src" -o "x/$f.wav"
done

python3 "$here/convert.py" x "$cache/raw" "$here/MANIFEST.pinned" > "$cache/MANIFEST"
rm -rf x
echo "media: $(wc -l < "$cache/MANIFEST") files in $cache/raw"
