#!/bin/bash
# compat.sh SCHEDCTL CASE POLICY
#
# Runs a real program natively and under `schedctl run --policy=POLICY
# --profile`, and compares what matters for that program (exit status,
# output bytes, counts).  Exit 0 same, 1 different, 77 skipped (the
# program is not installed; `.ci/run` installs them).
set -u
sc=$1 case=$2 policy=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

skip() { echo "skip: $*"; exit 77; }
die() { echo "FAIL [$case/$policy]: $*"; exit 1; }
need() { for p in "$@"; do command -v "$p" >/dev/null || skip "$p not installed"; done; }

# under COMMAND...: the command under schedctl with the policy and profiling.
under() {
	"$sc" run --policy="$policy" --profile --profile-out="$tmp/profile.txt" -- "$@"
}

"$sc" run --help >/dev/null 2>&1 || skip "'schedctl run' not available"

# native COMMAND...: the reference run, without the LD_PRELOAD that
# `./dev asan` gives every test (the ASan runtime, which only the
# supervised run's ASan-built preload needs; it slowed each native run).
native() { env -u LD_PRELOAD "$@"; }

# Run "native" and "under" with the same command; keep stdout, status.
both() {
	native "$@" >"$tmp/native.out" 2>"$tmp/native.err"; native_rc=$?
	under "$@" >"$tmp/under.out" 2>"$tmp/under.err"; under_rc=$?
	[ "$native_rc" = "$under_rc" ] ||
		die "exit $under_rc under schedctl, $native_rc native: $(tail -3 "$tmp/under.err")"
}

# field FILE REGEX: the first number on the first line matching REGEX.
field() { grep -m1 -E "$2" "$1" | grep -oE '[0-9]+' | head -n1; }

case $case in
sysbench-threads)
	need sysbench
	both sysbench threads --threads=4 --thread-locks=4 --time=0 --events=1000 run
	[ "$(field "$tmp/under.out" 'total number of events')" = 1000 ] || die "events differ"
	;;
sysbench-mutex)
	need sysbench
	both sysbench mutex --threads=4 --mutex-num=64 --mutex-locks=200000 --mutex-loops=50 run
	[ "$(field "$tmp/under.out" 'total number of events')" = \
	  "$(field "$tmp/native.out" 'total number of events')" ] || die "events differ"
	;;
stress-ng)
	need stress-ng
	# ok WHAT: both runs completed and counted operations of WHAT.
	ok() {
		for f in native under; do
			grep -q 'successful run completed' "$tmp/$f.err" "$tmp/$f.out" ||
				die "stress-ng did not complete ($f): $(tail -5 "$tmp/$f.err")"
			grep -qE "metrc: .* $1 +[1-9]" "$tmp/$f.err" "$tmp/$f.out" ||
				die "no $1 operations ($f): $(tail -5 "$tmp/$f.err")"
		done
	}
	both stress-ng --futex 2 --futex-ops 20000 --pthread 2 --pthread-ops 200 \
	     --verify --metrics-brief
	ok futex
	ok pthread
	# The mutex stressor: two SCHED_FIFO threads on one mutex, on their
	# own and for a time limit rather than a count.  stress-ng 0.15
	# checks its stop flag after creating its first thread and before
	# counting it as created, so it gives up ("could not create any
	# pthreads", exit 3) when the FIFO threads end the run before their
	# creator gets a CPU back: natively about one run in eight with
	# --mutex-ops, and with -t when other stressors share the CPUs.  One
	# instance leaves a CPU for its creator.  Under schedctl this failed
	# in most runs until the preload's start gate (preload/preload.c;
	# tests/cli create_order).
	both stress-ng --mutex 1 -t 2 --verify --metrics-brief
	ok mutex
	;;
pigz)
	need pigz
	head -c 24000000 /dev/urandom | base64 > "$tmp/input"
	both sh -c "pigz -p 2 -c < '$tmp/input'"
	cmp -s "$tmp/native.out" "$tmp/under.out" || die "pigz output differs"
	pigz -dc < "$tmp/under.out" | cmp -s - "$tmp/input" || die "round trip differs"
	;;
python-condition)
	need python3
	both python3 "$here/condition.py"
	cmp -s "$tmp/native.out" "$tmp/under.out" || die "output differs"
	;;
make-j2)
	need make cc
	mkdir -p "$tmp/src"
	"$here/gen-tree.sh" "$tmp/src" 24
	cp -r "$tmp/src" "$tmp/src2"
	native make -s -j2 -C "$tmp/src" >/dev/null 2>&1 || die "native make failed"
	under make -s -j2 -C "$tmp/src2" >/dev/null 2>"$tmp/under.err" ||
		die "make under schedctl failed: $(tail -3 "$tmp/under.err")"
	cmp -s <("$tmp/src/prog") <("$tmp/src2/prog") || die "built programs differ"
	;;
criterion-jobs2)
	bin=${COMPAT_CRITERION_BIN:?}
	both "$bin" --jobs=2
	syn() { grep -h 'Synthesis' "$1" | sed 's/\x1b\[[0-9;]*m//g'; }
	[ -n "$(syn "$tmp/native.err")" ] || die "no synthesis line natively"
	[ "$(syn "$tmp/native.err")" = "$(syn "$tmp/under.err")" ] ||
		die "synthesis differs: '$(syn "$tmp/under.err")'"
	;;
memcached)
	need memcached memcslap
	# The status memcached itself exits with on SIGTERM.
	# (env, not native(): a backgrounded function is a subshell, and
	# the signal must reach memcached itself)
	env -u LD_PRELOAD memcached -u nobody -l 127.0.0.1 -p 0 -U 0 >/dev/null 2>&1 &
	sleep 0.3; kill -TERM $!; wait $!; native_rc=$?
	port=$((20000 + RANDOM % 20000))
	# memcached writes its profile at exit as the user it switched to
	# (-u nobody), so the profile goes where that user may write.
	chmod 755 "$tmp"
	mkdir -m 1777 "$tmp/prof"
	# Not through under(): a backgrounded function is a subshell, and the
	# signal must reach schedctl itself.
	"$sc" run --policy="$policy" --profile --profile-out="$tmp/prof/profile.txt" -- \
		memcached -u nobody -t 4 -l 127.0.0.1 -p "$port" -U 0 \
		>"$tmp/mc.out" 2>"$tmp/mc.err" &
	mc=$!
	for _ in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	timeout 60 memcslap --servers="127.0.0.1:$port" --concurrency=4 \
		--execute-number=2000 >"$tmp/slap.out" 2>&1 ||
		die "memcslap failed: $(tail -3 "$tmp/slap.out")"
	# Data round trip through the supervised server.
	printf 'set k 0 0 5\r\nhello\r\nget k\r\nquit\r\n' > "$tmp/req"
	timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; cat '$tmp/req' >&3; cat <&3" \
		> "$tmp/resp" || true
	grep -q hello "$tmp/resp" || die "get after set failed: $(cat "$tmp/resp")"
	kill -TERM "$mc"
	wait "$mc"; rc=$?
	[ "$rc" = "$native_rc" ] ||
		die "memcached exited $rc under schedctl, $native_rc native: $(tail -3 "$tmp/mc.err")"
	grep -q 'schedctl lock profile' "$tmp/prof/profile.txt" 2>/dev/null ||
		die "no profile after the switch to user nobody: $(tail -3 "$tmp/mc.err")"
	;;
*)
	echo "unknown case $case"; exit 1 ;;
esac
echo "ok [$case/$policy]"
