/* The race checker beyond sim.h's interface: introspection for tests and statistics.
**
** How the event loop drives the checker (sim.h declares the calls):
**   - every memory access of an instruction: ot_race_access on the engine's thread, after the
**     instruction's waits were acquired;
**   - a DMA trigger: ot_race_clock_snapshot(issuer) at the trigger, kept with the transfer, and
**     ot_race_clock_acquire(queue, snapshot) when the transfer runs -- not ot_race_dma_issue at
**     the trigger, because a later trigger on the same queue would then lend the queue clock
**     values the earlier transfer never had (and hide its races) -- then its
**     reads and writes on the queue's thread, then ot_race_sem_inc on the queue's thread for the
**     completion semaphore (in that order: accesses reported after the increment would be
**     treated as ordered before the semaphore's waiters, and races with them missed);
**   - sem_inc and sem_set: ot_race_sem_inc (both release what the thread did before);
**   - a remote increment (sem_inc core=, a dma_copy completion with sem_core=): a snapshot of the
**     sender's clock when it is sent, ot_race_sem_release_clock on the target core when it lands;
**   - a sem_wait that passes, at once or when woken: ot_race_sem_acquire;
**   - a barrier: ot_race_barrier with the engines it releases.
** The call order must be a linearisation of simulated time: an access reported for a thread
** happens after everything reported for that thread before it.
*/
#ifndef OT_SIM_RACE_H
#define OT_SIM_RACE_H

#include "sim/sim.h"

/* Thread id returned for an engine or queue that does not exist. */
#define OT_RACE_NO_THREAD UINT32_MAX

/* Threads: cores x (OT_ENG_COUNT + chip->dma.queues). */
uint32_t ot_race_thread_count(const ot_race *r);
/* Races reported so far (each pair of instructions once). */
uint64_t ot_race_count(const ot_race *r);
/* Bytes of shadow state allocated (pages, directories, read sets, split granules): HBM and
** SRAM shadow is allocated a page at a time, on the first access to the page. */
uint64_t ot_race_shadow_bytes(const ot_race *r);

/* Per-transfer ordering: copy thread tid's vector clock into out (ot_race_thread_count entries)
** and tick tid (a release, as at a DMA trigger); later, join such a copy into thread tid (the
** queue, when the transfer runs). */
void ot_race_clock_snapshot(ot_race *r, uint32_t tid, uint32_t *out);
void ot_race_clock_acquire(ot_race *r, uint32_t tid, const uint32_t *clock);
/* A remote semaphore increment (sem_inc core=, dma_copy sem_core=) lands after a latency: the
** sender's clock is snapshotted (ot_race_clock_snapshot) when it is sent and joined into semaphore
** sem of core when it lands, so the waiters it releases on the other core are ordered after
** everything the sender did before sending -- a cross-core synchronisation edge. */
void ot_race_sem_release_clock(ot_race *r, const uint32_t *clock, uint32_t core, uint32_t sem);

#endif
