#!/usr/bin/env bash
# Audio held out from model tuning: 15 sonic-pi recordings that are not in
# bench/media/fetch.sh's evaluation set (media payload version 3's
# constants were chosen on that set). Per file: raw bytes, FLAC -8 (whole
# file), and llmfs's media payloads per 64 KiB block in version 2 and in
# this build's version, with the totals.
#
#   bench/media/heldout.sh [CACHE]     (CACHE as for fetch.sh, which must
#                                       have run: it holds the sonic-pi deb)
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${1:-${MEDIA_CACHE:-$HOME/.cache/llmfs-media}}
deb=$(ls "$cache"/dl/sonic-pi-samples_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "heldout.sh: no sonic-pi-samples deb in $cache/dl (run bench/media/fetch.sh)" >&2; exit 1; }
command -v flac >/dev/null || { echo "heldout.sh: needs flac" >&2; exit 1; }
cargo build --release --example media_eval >/dev/null 2>&1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/x"
names="ambi_sauna loop_3d_printer loop_garzul ambi_haunted_hum loop_safari
  loop_drone_g_97 misc_cineboom guit_em9 loop_tabla loop_mika ambi_glass_hum
  loop_weirdo perc_bell2 mehackit_robot6 guit_e_fifths"
files=()
for n in $names; do
  flac -s -d -f "$work/x/usr/share/sonic-pi/samples/$n.flac" -o "$work/$n.wav"
  flac -s -8 -f "$work/$n.wav" -o "$work/$n.flac8"
  files+=("$work/$n.wav")
done
ev=target/release/examples/media_eval
"$ev" --quick --version 2 "${files[@]}" > "$work/v2"
"$ev" --quick "${files[@]}" > "$work/now"
for f in "${files[@]}"; do stat -c %s "${f%.wav}.flac8"; done > "$work/flac"
printf 'file\traw\tflac8\tmedia_v2\tv2/flac\tmedia_now\tnow/flac\n'
paste "$work/v2" "$work/now" "$work/flac" | awk '
  { raw += $2; v2 += $3; now += $6; fl += $7
    printf "%s\t%d\t%d\t%d\t%.3f\t%d\t%.3f\n", $1, $2, $7, $3, $3 / $7, $6, $6 / $7 }
  END { printf "total\t%d\t%d\t%d\t%.4f\t%d\t%.4f\n", raw, fl, v2, v2 / fl, now, now / fl }'
