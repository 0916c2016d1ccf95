#!/bin/sh
# run_compare.sh - contended lock throughput of an unmodified program
# under `schedctl run` with and without --profile, side by side:
# the two alternate (order swapped every run) and the medians are shown.
#
# usage: run_compare.sh SCHEDCTL PROF_WORKLOAD [RUNS [THREADS MS CS_NS [POLICY [EXTRA]]]]
#   EXTRA: more `schedctl run` options for the profiled runs, e.g.
#   "--trace=/tmp/t.json" (default none)
set -eu
sc=$1; wl=$2; runs=${3:-9}; threads=${4:-4}; ms=${5:-300}; cs=${6:-200}
policy=${7:-owner}; extra=${8:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
one() {   # $1: plain|prof
	if [ "$1" = prof ]; then
		# shellcheck disable=SC2086
		"$sc" run --policy="$policy" --profile-out="$tmp/p.txt" $extra -- \
			"$wl" "$threads" "$ms" "$cs"
	else
		"$sc" run --policy="$policy" -- "$wl" "$threads" "$ms" "$cs"
	fi | awk '{print $4}'
}
i=0
while [ "$i" -lt "$runs" ]; do
	if [ $((i % 2)) -eq 0 ]; then
		one plain >> "$tmp/plain"; one prof >> "$tmp/prof"
	else
		one prof >> "$tmp/prof"; one plain >> "$tmp/plain"
	fi
	i=$((i + 1))
done
med() { sort -g "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(med "$tmp/plain"); q=$(med "$tmp/prof")
echo "policy $policy threads $threads cs ${cs}ns runs $runs: without --profile $p Mops/s, with $q Mops/s, ratio $(awk -v a="$q" -v b="$p" 'BEGIN{printf "%.3f", a/b}')"
echo "  without: $(sort -g "$tmp/plain" | tr '\n' ' ')"
echo "  with:    $(sort -g "$tmp/prof" | tr '\n' ' ')"
