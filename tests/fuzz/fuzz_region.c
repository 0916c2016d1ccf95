/*
 * fuzz_region.c - libFuzzer target for what the supervisor reads from a
 * program's slot region (src/supervisor/image.c): the program writes the
 * header and every slot, so rh_npages, ss_tid, sc_state and ss_source are
 * arbitrary.  The input is the region's first bytes (the rest is zero,
 * as in a fresh memfd) followed by the tids to look up.
 *
 * Layout: u16 n (bytes of region), n region bytes, then 4-byte tids,
 * each looked up with sv_slot_find (with the hint carried over, as the
 * sampler does) and, if found, stored into with sv_slot_store.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "supervisor/sv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

#define REGION_FUZZ_MAX (64u * 1024u)

static char *region;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (!region) {
		region = mmap(NULL, SC_REGION_SIZE, PROT_READ | PROT_WRITE,
		              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (region == MAP_FAILED)
			abort();
	}
	if (len < 2)
		return 0;
	size_t n = (size_t)data[0] | (size_t)data[1] << 8;
	data += 2;
	len -= 2;
	if (n > len)
		n = len;
	if (n > REGION_FUZZ_MAX)
		n = REGION_FUZZ_MAX;
	memcpy(region, data, n);
	data += n;
	len -= n;

	struct sv_image im;
	memset(&im, 0, sizeof im);
	im.im_base = region;
	im.im_listener = -1;
	im.im_conn = -1;
	uint32_t hint = 0;
	for (; len >= 4; data += 4, len -= 4) {
		int32_t tid;
		memcpy(&tid, data, 4);
		struct sc_slot *s = sv_slot_find(&im, tid, &hint);
		if (!s)
			continue;
		if ((char *)s < region + SC_SLOT_SIZE ||
		    (char *)s + SC_SLOT_SIZE > region + SC_REGION_SIZE)
			abort();                  /* a slot outside the region */
		sv_slot_store(s, (int)(tid & 7), (int)(tid >> 8 & 3) - 1);
	}
	memset(region, 0, REGION_FUZZ_MAX + SC_PAGE_SIZE);
	return 0;
}
