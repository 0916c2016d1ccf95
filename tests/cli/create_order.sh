#!/bin/sh
# create_order.sh SCHEDCTL PROGRAM native|POLICY: run create_order
# natively or under `schedctl run --policy=POLICY`; its exit status.
sc=$1 prog=$2 how=$3
[ "$how" = native ] && exec "$prog"
exec "$sc" run --policy="$how" -- "$prog"
