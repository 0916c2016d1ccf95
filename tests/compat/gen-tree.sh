#!/bin/sh
# gen-tree.sh DIR N: a small C project of N files and a Makefile.
set -eu
dir=$1 n=$2
: > "$dir/decls.h"
main="$dir/main.c"
echo '#include <stdio.h>' > "$main"
echo '#include "decls.h"' >> "$main"
echo 'int main(void) { long s = 0;' >> "$main"
objs=""
for i in $(seq "$n"); do
	cat > "$dir/f$i.c" <<EOC
#include "decls.h"
long f$i(long x) { long s = 0; for (long k = 0; k < x; k++) s += (k * $i) % 7; return s; }
EOC
	echo "long f$i(long x);" >> "$dir/decls.h"
	echo "s += f$i(1000);" >> "$main"
	objs="$objs f$i.o"
done
printf '%s\n' 'printf("%ld\n", s); return 0; }' >> "$main"
cat > "$dir/Makefile" <<EOM
prog: main.o$objs
	\$(CC) -o \$@ \$^
%.o: %.c decls.h
	\$(CC) -O1 -c -o \$@ \$<
EOM
