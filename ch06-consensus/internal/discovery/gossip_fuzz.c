/* gossip_fuzz.c - libFuzzer target (`make fuzz`; `make check-long` runs it for
 * a minute): arbitrary bytes into the codec and into a membership core.
 * Nothing may crash or trip ASan/UBSan; whatever decodes re-encodes to the
 * same bytes (the format has one spelling per message); and a core fed the
 * bytes, then ticked, keeps its own entry alive and never forgets itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal/discovery/gossip.h"
#include "internal/discovery/membership.h"
#include "internal/err/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    plog_gossip_msg m;
    int rv = plog_gossip_decode(data, size, &m);
    if (rv == PLOG_OK) {
        uint8_t *again;
        size_t n;
        if (plog_gossip_encode_alloc(&m, &again, &n) != PLOG_OK || n != size ||
            memcmp(again, data, size) != 0)
            abort();
        free(again);
        plog_gossip_release(&m);
    } else if (rv != PLOG_ECORRUPT && rv != PLOG_EVERSION && rv != PLOG_ETOOBIG) {
        abort();
    }

    plog_membership_config c;
    plog_membership_config_fast(&c);
    c.name = "node-1";
    c.addr = "tls+tcp://127.0.0.1:8401";
    c.seed = 1;
    plog_membership *mb;
    if (plog_membership_new(&c, 0, &mb) != PLOG_OK)
        abort();
    if (plog_membership_recv(mb, 1, data, size) != rv)
        abort();
    for (uint64_t t = 2; t < 3000; t += 37)
        plog_membership_tick(mb, t);
    plog_membership_member self;
    if (!plog_membership_find(mb, "node-1", &self) || self.status != PLOG_GOSSIP_ALIVE)
        abort();
    plog_membership_send s;
    while (plog_membership_pop_send(mb, &s)) {
        if (plog_gossip_decode(s.data, s.len, &m) != PLOG_OK) /* we only ever send valid messages */
            abort();
        plog_gossip_release(&m);
        free(s.data);
    }
    plog_membership_free(mb);
    return 0;
}
