#!/usr/bin/env bash
# storm.sh SCHEDCTL STORM - the signal storm (storm.c) natively, then
# under `schedctl run` with each policy, with read() notified, with the
# supervisor as the state source, and with the supervisor SIGKILLed
# half-way.  Every run must exit 0 (all semantic checks held).
set -uo pipefail
S=$1 P=$2
fail=0
run() {
	local out rc
	out=$(timeout -k 5 60 "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed "s|^|  |"
	if [ $rc -ne 0 ] || ! grep -q '^storm: .* 0 failures$' <<<"$out"; then
		echo "FAIL (exit $rc): $*"
		fail=1
	else
		echo "ok: $*"
	fi
}
run "$P" 2
for pol in owner spin park glibc; do
	run "$S" run --policy=$pol -- "$P" 2
done
run "$S" run --notify=default,+read,+write -- "$P" 2
run "$S" run --state-source=supervisor --profile --profile-out=/dev/null -- "$P" 2
run "$S" run --policy=owner --notify=default,+read -- "$P" 2 kill-supervisor
exit $fail
