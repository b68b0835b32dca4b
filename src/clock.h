/*-------------------------------------------------------------------------
 * clock.h
 *	  The two clocks of stockx_enrich, in microseconds: a monotonic one for
 *	  pacing, pauses and the circuit (the same in every process of the
 *	  host, deaf to wall-clock steps), and the wall clock since the Unix
 *	  epoch for the UTC day of the quota and for what the views show.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_CLOCK_H
#define STOCKX_CLOCK_H

#include <time.h>

#include "datatype/timestamp.h"
#include "utils/timestamp.h"

#define SX_UNIX_TO_PG_EPOCH_US ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

static inline int64
stockx_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * USECS_PER_SEC + ts.tv_nsec / 1000;
}

/* Microseconds since the Unix epoch. */
static inline int64
stockx_wall_now(void)
{
	return GetCurrentTimestamp() + SX_UNIX_TO_PG_EPOCH_US;
}

static inline TimestampTz
stockx_timestamp_from_wall(int64 wall_us)
{
	return wall_us - SX_UNIX_TO_PG_EPOCH_US;
}

/* The wall-clock time of a monotonic instant, given one reading of each clock. */
static inline TimestampTz
stockx_timestamp_from_mono(int64 mono_us, int64 mono_now, int64 wall_now)
{
	return stockx_timestamp_from_wall(wall_now + (mono_us - mono_now));
}

#endif /* STOCKX_CLOCK_H */
