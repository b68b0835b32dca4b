/*-------------------------------------------------------------------------
 * limiter.h
 *	  The arithmetic of the cluster-wide rate limiter: GCRA slots paced by
 *	  actual send times, a safety margin that widens after an isolated 429,
 *	  the shared pause and full-jitter backoff after repeated 429s, the
 *	  adaptive rate, the circuit breaker and the daily quota.
 *
 * Plain C with no PostgreSQL dependency: every function takes the clock as
 * an argument and randomness as a number in [0, 1), so the unit tests drive
 * it deterministically.  Two clocks are involved: "now" is a monotonic
 * clock in microseconds (pacing, pauses, circuit), "day" is the UTC day
 * number of the wall clock (the quota).  The caller owns locking; see
 * shared_limiter.c for the shared-memory wrapper.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_LIMITER_H
#define STOCKX_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

#define SX_USECS_PER_SEC       INT64_C(1000000)
#define SX_USECS_PER_DAY       (INT64_C(86400) * SX_USECS_PER_SEC)
#define SX_CIRCUIT_MAX_OPEN_US SX_USECS_PER_DAY

/*
 * The record of send times for the rolling 24 hours: requests per 5-minute
 * bucket of the wall clock.  A window is the current bucket and the 288
 * before it: at least the last 24 hours, at most 5 minutes more (so the
 * limit holds in any 24 hours, erring on the side of waiting).
 */
#define SX_WINDOW_BUCKET_US (INT64_C(300) * SX_USECS_PER_SEC)
#define SX_WINDOW_SPAN      289
#define SX_WINDOW_BUCKETS   SX_WINDOW_SPAN

/* Settings the limiter reads; the caller fills them from the GUCs. */
typedef struct SxLimiterConfig
{
	double requests_per_second;
	int burst;
	int64_t daily_limit; /* 0 = no limit */
	int backoff_base_ms;
	int backoff_max_ms;
	int circuit_threshold; /* 0 = never open */
	int64_t circuit_open_ms;
	int64_t probe_timeout_ms; /* a probe has surely ended after this */
	double margin_ms;         /* added to every emission interval */
	int64_t send_timeout_ms;  /* a granted slot never confirmed as sent is forgotten */
	int64_t outside_slack_ms; /* a program outside the database sends within this of its grant */
} SxLimiterConfig;

typedef enum SxCircuitState
{
	SX_CIRCUIT_CLOSED = 0,
	SX_CIRCUIT_OPEN,
	SX_CIRCUIT_HALF_OPEN
} SxCircuitState;

typedef struct SxLimiter
{
	int64_t tat;           /* GCRA theoretical arrival time */
	int pending_sends;     /* slots granted whose send is not confirmed */
	int64_t pending_since; /* when the oldest of them was granted */
	double effective_rate; /* requests/s after cuts for repeated 429s */
	int64_t extra_margin;  /* widened after isolated 429s, in us */
	int64_t successes;     /* successes since the last 429 or margin decay */
	int64_t paused_until;  /* cluster-wide pause after a 429 */
	int consecutive_429;
	int64_t responses_429_total;
	SxCircuitState circuit;
	int64_t circuit_open_until;
	int circuit_trips;    /* trips since the circuit last closed */
	bool probe_in_flight; /* half-open: the one probe is out */
	int64_t probe_sent_at;
	int64_t last_now;  /* latest clock reading: a clock that steps back is noticed */
	int64_t quota_day; /* days since the epoch (UTC) */
	int64_t requests_today;
	int64_t window_latest;             /* bucket number (wall / bucket) last written */
	int32_t window[SX_WINDOW_BUCKETS]; /* requests per bucket, ring by bucket number */
} SxLimiter;

/*
 * What the limiter keeps across a restart: the UTC day's count, the rolling
 * window of send times (window[i] is bucket window_latest - SX_WINDOW_BUCKETS
 * + 1 + i; window_latest < 0: none) and the pacing margin it learnt.
 */
typedef struct SxPersisted
{
	int64_t day;
	int64_t requests;
	int64_t window_latest;
	int32_t window[SX_WINDOW_BUCKETS];
	int64_t margin_us;
} SxPersisted;

typedef enum SxVerdict
{
	SX_GO,              /* send now: a slot and a quota unit are taken */
	SX_WAIT,            /* rate slot not yet reached: wait *wait_us */
	SX_PAUSED,          /* cluster-wide pause after a 429 */
	SX_REFUSED_CIRCUIT, /* stop: the circuit is open */
	SX_REFUSED_QUOTA    /* stop: the daily quota is spent */
} SxVerdict;

/* What an HTTP answer tells the limiter (sx_answer_class()). */
typedef enum SxAnswerClass
{
	SX_ANSWER_SUCCESS,      /* StockX's API answered: the request got through */
	SX_ANSWER_RATE_LIMITED, /* 429 */
	SX_ANSWER_NEUTRAL       /* no answer, or one that says nothing about the rate */
} SxAnswerClass;

extern SxAnswerClass sx_answer_class(long status);

extern void sx_limiter_init(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now, int64_t day);
extern SxVerdict sx_limiter_acquire(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now,
                                    int64_t wall_now, int64_t *wait_us);
extern void sx_limiter_sent(SxLimiter *l, const SxLimiterConfig *cfg, int64_t sent_at, bool first);
extern void sx_limiter_sent_within(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now,
                                   int64_t slack_us);
extern void sx_limiter_unsent(SxLimiter *l);
extern void sx_limiter_on_success(SxLimiter *l, const SxLimiterConfig *cfg);
extern int64_t sx_limiter_on_429(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now,
                                 int64_t retry_after_us, double unit_random);
extern void sx_limiter_on_other_failure(SxLimiter *l);
extern void sx_limiter_note_persisted(SxLimiter *l, int64_t day, int64_t requests);
extern void sx_limiter_import(SxLimiter *l, const SxPersisted *in);
extern void sx_limiter_export(const SxLimiter *l, SxPersisted *out);
extern bool sx_limiter_quota_spent(SxLimiter *l, const SxLimiterConfig *cfg, int64_t wall_now);
extern int64_t sx_limiter_window_count(const SxLimiter *l, int64_t wall_now);
extern int64_t sx_limiter_next_allowed(const SxLimiter *l, const SxLimiterConfig *cfg,
                                       int64_t wall_now);
extern bool sx_limiter_circuit_refuses(const SxLimiter *l, int64_t now);
extern int64_t sx_limiter_next_slot(const SxLimiter *l, const SxLimiterConfig *cfg, int64_t now);
extern int64_t sx_limiter_interval(const SxLimiter *l, const SxLimiterConfig *cfg);
extern int64_t sx_limiter_margin(const SxLimiter *l, const SxLimiterConfig *cfg);
extern double sx_rate_floor(const SxLimiterConfig *cfg);

extern int64_t sx_backoff_us(int base_ms, int max_ms, int attempt, double unit_random);
extern int64_t sx_day_of(int64_t wall_us);
extern int64_t sx_quota_resets_at(const SxLimiter *l);
extern int64_t sx_parse_retry_after(const char *value, int64_t wall_now);

#endif /* STOCKX_LIMITER_H */
