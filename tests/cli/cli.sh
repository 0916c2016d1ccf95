#!/bin/sh
# The schedctl command: help, version, demo, and exit codes on bad input.
# usage: cli.sh SCHEDCTL REFUSE (tests/cli/refuse.c)
set -u
sc=$1 refuse=$2
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# expect STATUS COMMAND...: run it, output in $out, check the exit status.
expect() {
	want=$1; shift
	"$@" >"$out" 2>&1; got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL: '$*' exited $got, want $want"; head -5 "$out"; fail=1
	fi
}
# has TEXT: the last command's output contains TEXT.
has() {
	grep -qF -- "$1" "$out" || { echo "FAIL: output lacks '$1'"; tail -12 "$out"; fail=1; }
}

expect 0 "$sc" --help;                 has 'usage: schedctl'
expect 0 "$sc" --version;              has 'schedctl 0.'
expect 2 "$sc"
expect 2 "$sc" frobnicate;             has "unknown command 'frobnicate'"
expect 2 "$sc" demo states --samples -3;   has "bad --samples"
expect 2 "$sc" demo states --samples 99999999999
expect 2 "$sc" demo states now;            has "takes no arguments"
expect 2 "$sc" demo --frob
expect 2 "$sc" demo --ms 0;                has "bad --ms"
expect 2 "$sc" demo locks extra;           has "takes no arguments"

# The main job: the built-in lock workload under `schedctl run --profile`.
expect 0 "$sc" demo --ms 300
for what in 'schedctl lock profile' 'cache_lock' 'log_lock' 'io_lock' \
            'no lost updates' 'demo_locks.c:'; do
	has "$what"
done
# io_lock's owner sleeps while holding it: waiters must see it asleep.
awk '/^lock [0-9]+: io_lock/ { f = 1 } f && /owner on arrival/ { print; exit }' "$out" |
	grep -qE 'SLEEP [1-9]' || { echo "FAIL: io_lock waiters never saw the owner asleep"; fail=1; }

# Report order and size from schedctl run's own options.
expect 2 "$sc" run --sort=bogus -- true;    has "invalid value 'bogus' for --sort"
expect 2 "$sc" run --top=x -- true;         has "--top needs a count"
expect 0 "$sc" run --profile --sort=hold --top=1 -- "$(dirname "$sc")/schedctl-demo-locks" 200
has 'sorted by hold'
has '2 more locks not shown'

expect 0 "$sc" demo states --samples 200 --show 1
for what in 'state source:' 'sample 1' 'share of 200 samples' 'blocked in read'; do
	has "$what"
done
# The thread blocked in read() must be seen asleep in (nearly) every sample.
grep 'blocked in read() on a pipe  ' "$out" | grep -qE ' (9[5-9]|100)% ' ||
	{ echo "FAIL: read() thread not SLEEP"; tail -12 "$out"; fail=1; }
# An explicit choice that cannot be honoured is said on stderr without
# --verbose; the automatic default falls back quietly.
lacks() {
	! grep -qF -- "$1" "$out" || { echo "FAIL: output has '$1'"; tail -5 "$out"; fail=1; }
}
expect 0 "$refuse" perf_event_open "$sc" run --state-source=perf -- true
has 'schedctl: kernel context-switch records refused (Permission denied); --state-source=perf not honoured'
expect 0 "$refuse" perf_event_open "$sc" run -- true;      lacks 'schedctl:'
expect 0 "$refuse" seccomp "$sc" run --notify=default,+read -- true
has 'schedctl: --notify: no seccomp filter can be installed here (Permission denied)'
expect 0 env SCHEDCTL_NOTIFY=default "$refuse" seccomp "$sc" run -- true
has 'schedctl: --notify: no seccomp filter'
expect 0 "$refuse" seccomp "$sc" run -- true;              lacks 'schedctl:'
expect 0 "$sc" run --notify=default -- true;               lacks 'schedctl:'
expect 0 "$sc" run --help;                 has 'cannot honour'

[ $fail = 0 ] && echo "cli: all checks passed"
exit $fail
