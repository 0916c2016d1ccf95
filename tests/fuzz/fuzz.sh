#!/usr/bin/env bash
# fuzz.sh SRCDIR OUTDIR SECONDS [TARGET...] - build the libFuzzer targets
# with clang (ASan + UBSan + fuzzer) over the library's sources and run
# each for SECONDS, from the seed corpus in tests/fuzz/corpus/TARGET.
# Exit 0 when every run is clean, 1 on a finding (the crashing input is
# left in OUTDIR/artifacts), 77 (skip) without clang or libFuzzer.
set -euo pipefail
SRC=$1 OUT=$2 SECS=$3
shift 3
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(json region hello)

CLANG=$(command -v clang || command -v clang-14 || true)
if [ -z "$CLANG" ]; then
	echo "fuzz: clang not installed (apt-get install clang libclang-rt-14-dev); skipping"
	exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){return 0;}' \
	>"$probe/p.c"
if ! "$CLANG" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>/dev/null; then
	echo "fuzz: clang cannot link libFuzzer (libclang-rt-14-dev missing); skipping"
	exit 77
fi
DEPS=$(pkg-config --cflags --libs liburcu-bp liburcu-cds libunwind libseccomp \
	2>/dev/null) || { echo "fuzz: library dependencies missing; skipping"; exit 77; }

# The library's sources, compiled once per change into OUT/obj.
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
CFLAGS=(-g -O1 -std=gnu11 -D_GNU_SOURCE -fvisibility=hidden -fPIC
        -I"$SRC/include" -I"$SRC/src" "${SAN[@]}" -fsanitize=fuzzer-no-link)
mkdir -p "$OUT/obj" "$OUT/artifacts"
objs=()
jobs=0
for f in "$SRC"/src/{sc,lock,prof,supervisor,pager}/*.c; do
	[ -f "$f" ] || continue
	o="$OUT/obj/$(basename "$(dirname "$f")")_$(basename "$f" .c).o"
	objs+=("$o")
	if [ ! -f "$o" ] || [ "$f" -nt "$o" ] ||
	   [ -n "$(find "$SRC/src" "$SRC/include" -name '*.h' -newer "$o" -print -quit)" ]; then
		rm -f "$o"
		"$CLANG" "${CFLAGS[@]}" -c "$f" -o "$o" &
		jobs=$((jobs + 1))
		if [ $jobs -ge "$(nproc)" ]; then wait -n || true; jobs=$((jobs - 1)); fi
	fi
done
wait || true
for o in "${objs[@]}"; do
	[ -f "$o" ] || { echo "fuzz: failed to compile $o" >&2; exit 1; }
done
rm -f "$OUT/libsc_fuzz.a"
ar rcs "$OUT/libsc_fuzz.a" "${objs[@]}"

rc=0
for t in "${TARGETS[@]}"; do
	bin="$OUT/fuzz_$t"
	# shellcheck disable=SC2086
	"$CLANG" "${CFLAGS[@]}" -fsanitize=fuzzer "$SRC/tests/fuzz/fuzz_$t.c" \
		"$OUT/libsc_fuzz.a" $DEPS -lpthread -o "$bin"
	corpus="$OUT/corpus_$t"
	mkdir -p "$corpus"
	[ -d "$SRC/tests/fuzz/corpus/$t" ] && cp -n "$SRC/tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true
	echo "fuzz: $t for ${SECS}s"
	if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	     "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
	     -close_fd_mask=2 -print_final_stats=1 \
	     -artifact_prefix="$OUT/artifacts/${t}-" "$corpus" 2>"$OUT/$t.log"; then
		echo "fuzz: $t FOUND A PROBLEM (input in $OUT/artifacts/):"
		grep -v '^#[0-9]' "$OUT/$t.log" | tail -60
		rc=1
	else
		grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss)' \
			"$OUT/$t.log" | sed "s/^/fuzz: $t /"
	fi
done
exit $rc
