#!/usr/bin/env bash
# soak.sh SCHEDCTL [SECONDS [INTERVAL]] - the soak run (not a test):
# soak_work (mixed lock / condvar / thread-churn workload) for SECONDS
# (default 600) under `schedctl run --profile`, sampling the resident
# set (VmRSS) of the program and of its supervisor every INTERVAL
# seconds (default 10).  Prints the samples and, for each process, the
# first, last, peak and the growth from the first sample after warm-up
# (a sixth of the run) to the last.  Results: docs/benchmarks.md, ## Soak.
set -euo pipefail
S=$(readlink -f "$1")
SECS=${2:-600}
EVERY=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -pthread "$here/soak_work.c" -o "$tmp/soak_work"

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

"$S" run --profile --profile-out="$tmp/profile.txt" -- "$tmp/soak_work" "$SECS" \
	>"$tmp/out" 2>"$tmp/err" &
prog=$!                      # schedctl run execs the program in this pid
sup=""
for _ in $(seq 100); do
	sup=$(awk '/^TracerPid:/ { print $2 }' "/proc/$prog/status" 2>/dev/null || true)
	[ -n "$sup" ] && [ "$sup" != 0 ] && break
	sleep 0.1
done
echo "soak: program pid $prog, supervisor pid ${sup:-none}, ${SECS} s, sample every ${EVERY} s"
echo "t_s prog_rss_kib sup_rss_kib prog_threads"
t=0
: >"$tmp/samples"
while kill -0 "$prog" 2>/dev/null && [ "$t" -le "$SECS" ]; do
	p=$(rss "$prog"); s=$(rss "${sup:-0}")
	th=$(awk '/^Threads:/ { print $2 }' "/proc/$prog/status" 2>/dev/null || echo 0)
	echo "$t $p $s $th" | tee -a "$tmp/samples"
	sleep "$EVERY"
	t=$((t + EVERY))
done
rc=0
wait "$prog" || rc=$?
cat "$tmp/out"
echo "soak: exit status $rc; stderr lines: $(wc -l <"$tmp/err")"
head -5 "$tmp/err"
warm=$((SECS / 6))
awk -v warm="$warm" '
	$1 >= warm && !w { wp = $2; ws = $3; w = 1 }
	NR == 1 { fp = $2; fs = $3 }
	{ lp = $2; ls = $3; if ($2 > mp) mp = $2; if ($3 > ms) ms = $3 }
	END {
		printf "program:    first %d KiB, after warm-up (%d s) %d KiB, last %d KiB, peak %d KiB, growth after warm-up %+d KiB\n", fp, warm, wp, lp, mp, lp - wp
		printf "supervisor: first %d KiB, after warm-up (%d s) %d KiB, last %d KiB, peak %d KiB, growth after warm-up %+d KiB\n", fs, warm, ws, ls, ms, ls - ws
	}' "$tmp/samples"
grep -m4 -E 'acquisitions|locks|^overflow' "$tmp/profile.txt" 2>/dev/null | sed 's/^/profile: /' || true
# No overflow line: no record cap was reached (threads reuse the records
# of exited ones).
grep -q '^overflow' "$tmp/profile.txt" 2>/dev/null || echo "profile: no overflow"

exit $rc
