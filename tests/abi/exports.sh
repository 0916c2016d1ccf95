#!/bin/sh
# Every dynamic symbol libschedctl.so exports must be declared in a public
# header, and the illumos entry points must be among them.
# usage: exports.sh LIBRARY INCLUDE_DIR
set -eu
lib=$1 inc=$2
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWi]$/ { print $3 }' |
       sed 's/@.*//' | grep -v '^SCHEDCTL_' | sort -u)
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
fail=0
for s in $syms; do
	if ! grep -rqE "\\b$s\\b[[:space:]]*\\(" "$inc"; then
		echo "exported but not declared in $inc: $s"
		fail=1
	fi
done
for s in schedctl_init schedctl_lookup schedctl_exit schedctl_start \
         schedctl_stop schedctl_self schedctl_of schedctl_state schedctl_cpu; do
	echo "$syms" | grep -qx "$s" || { echo "missing export: $s"; fail=1; }
done
echo "$(echo "$syms" | wc -l) exported symbols checked"
exit $fail
