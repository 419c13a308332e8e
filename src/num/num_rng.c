/* Counter-based random source for stochastic rounding: splitmix64 (a Weyl counter through a
** 64-bit finaliser).  Pure integer arithmetic, so a seed gives the same stream everywhere, and
** element i of a stream can be reached by seeding with seed + i * golden if ever needed. */
#include "num/num_internal.h"

#define NUM_RNG_GOLDEN UINT64_C(0x9E3779B97F4A7C15)

void ot_rng_seed(ot_rng *r, uint64_t seed) {
  if (r) r->state = seed;
}

uint32_t ot_rng_u32(ot_rng *r) {
  if (!r) return 0;
  uint64_t z = (r->state += NUM_RNG_GOLDEN);
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  z ^= z >> 31;
  return (uint32_t)(z >> 32); /* the high half: the best-mixed bits */
}
