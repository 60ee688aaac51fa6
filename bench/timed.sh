# Sourced by bench scripts that time commands on a mounted contender
# (after contender.sh): `timed NAME CMD...` runs CMD and prints a TSV
# line: $b (the contender), $round, NAME, seconds, and the daemon's CPU
# seconds meanwhile (contender_cpu).
timed() {
  local name=$1
  shift
  local before start end after
  before=$(contender_cpu)
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  after=$(contender_cpu)
  printf '%s\t%s\t%s\t%.3f\t%.2f\n' "$b" "$round" "$name" "$(echo "$end - $start" | bc -l)" \
    "$(echo "($after - $before) / $(getconf CLK_TCK)" | bc -l)"
}
