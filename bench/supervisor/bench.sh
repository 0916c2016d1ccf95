#!/bin/bash
# bench.sh SCHEDCTL SUP_BENCH [ROUNDS]
#
# The supervisor benchmarks, side by side: each round runs every variant
# once, in the same order; the table gives the median over the rounds
# and ratios of medians.  Results: docs/benchmarks.md.
set -eu
sc=$1 b=$2 rounds=${3:-7}
N=${SUP_BENCH_CALLS:-200000} P=${SUP_BENCH_PINGPONG:-50000} S=${SUP_BENCH_SPAWNS:-40}
declare -A v
add() { v[$1]="${v[$1]:-} $2"; }
val() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" | head -n1; }
for r in $(seq "$rounds"); do
	add call_native "$("$b" call "$N" | val call_ns)"
	add call_bare "$("$b" bare "$N" | val bare_ns)"
	add call_bare_ring "$(SUP_BENCH_RING=1 "$b" bare "$N" | val bare_ns)"
	add call_sup "$("$sc" run --state-source=supervisor -- "$b" call "$N" | val call_ns)"
	add call_sup_perf "$("$sc" run --state-source=perf -- "$b" call "$N" | val call_ns)"
	for pin in same split; do
		export SUP_BENCH_PIN=$pin
		add pp_native_$pin "$("$b" pingpong "$P" | val pingpong_ns)"
		add pp_glibc_$pin "$("$sc" run --policy=glibc --state-source=supervisor -- "$b" pingpong "$P" | val pingpong_ns)"
		add pp_owner_$pin "$("$sc" run --state-source=supervisor -- "$b" pingpong "$P" | val pingpong_ns)"
		add pp_owner_auto_$pin "$("$sc" run -- "$b" pingpong "$P" | val pingpong_ns)"
		unset SUP_BENCH_PIN
	done
	for us in default 2000 500 pinned; do
		case $us in
		default) opt=() ;;
		pinned) opt=(--supervisor-cpus=1) ;;
		*) opt=(--sample-us=$us) ;;
		esac
		out=$("$sc" run --state-source=supervisor "${opt[@]}" -- "$b" accuracy 2000)
		add acc_$us "$(val hog_agree_pct <<<"$out")"
		add cpu_$us "$(sed -n 's/.*supervisor_cpu_pct=\([0-9]*\).*/\1/p' <<<"$out")"
	done
	add start_native "$("$b" spawn "$S" /bin/true | val spawn_ns)"
	add start_run "$("$b" spawn "$S" "$sc" run -- /bin/true | val spawn_ns)"
done
med() { tr ' ' '\n' <<<"${v[$1]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$(med "$1")" -v b="$(med "$2")" 'BEGIN {printf "%.2f", a/b}'; }
echo "| measurement | median | ratio |"
echo "|---|---:|---:|"
echo "| futex call, no filter (native) | $(med call_native) ns | |"
echo "| notified call, bare SYNC_WAKE_UP supervisor | $(med call_bare) ns | 1.00 |"
echo "| notified call, schedctl supervisor (supervisor source) | $(med call_sup) ns | $(ratio call_sup call_bare) x bare |"
echo "| notified call, schedctl supervisor (perf source) | $(med call_sup_perf) ns | $(ratio call_sup_perf call_bare) x bare |"
echo "| notified call, bare supervisor, caller has a perf switch ring | $(med call_bare_ring) ns | $(ratio call_bare_ring call_bare) x bare |"
echo "| notified call, schedctl supervisor (perf source) vs bare with ring | | $(ratio call_sup_perf call_bare_ring) x |"
for pin in same split; do
	where="both threads on CPU 0"
	[ $pin = split ] && where="threads on CPU 0 and CPU 1"
	echo "| mutex+condvar round trip, $where, native glibc | $(med pp_native_$pin) ns | 1.00 |"
	echo "| same under schedctl run --policy=glibc (supervisor source) | $(med pp_glibc_$pin) ns | $(ratio pp_glibc_$pin pp_native_$pin) x native |"
	echo "| same under schedctl run (owner policy, supervisor source) | $(med pp_owner_$pin) ns | $(ratio pp_owner_$pin pp_native_$pin) x native |"
	echo "| same under schedctl run (owner policy, auto source) | $(med pp_owner_auto_$pin) ns | $(ratio pp_owner_auto_$pin pp_native_$pin) x native |"
done
echo "| start-up: /bin/true | $(med start_native) ns | 1.00 |"
echo "| start-up: schedctl run -- /bin/true | $(med start_run) ns | $(ratio start_run start_native) x |"
for us in default 2000 500 pinned; do
	case $us in
	default) what="default sampling" ;;
	pinned) what="default sampling, --supervisor-cpus=1" ;;
	*) what="--sample-us=$us" ;;
	esac
	echo "| two threads sharing CPU 0: state agrees with the kernel's switch record, $what | $(med acc_$us) % | supervisor CPU $(med cpu_$us) % |"
done
echo
echo "rounds=$rounds calls=$N pingpong=$P spawns=$S; raw values:"
for k in "${!v[@]}"; do echo "  $k:${v[$k]}"; done | sort
