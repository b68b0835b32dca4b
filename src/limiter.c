/*-------------------------------------------------------------------------
 * limiter.c
 *	  Pure arithmetic of the rate limiter (see limiter.h).
 *
 * GCRA: each request moves the theoretical arrival time (tat) forward by
 * one emission interval T = 1/effective_rate + margin; a request may go
 * when tat - tau <= now, where tau = T * (burst - 1) is the tolerance.
 *
 * Pacing follows actual send times, not slot times: a granted slot stays
 * "pending" until the caller reports when the request really left
 * (sx_limiter_sent), and the next slot is then at least one interval after
 * that moment.  While burst slots are pending nobody else gets one, so a
 * sender descheduled between its slot and its send cannot shorten the gap
 * to the next request.  A pending slot never confirmed is forgotten after
 * send_timeout_ms.
 *
 * 429s: an isolated one (the first after a success) only widens the margin
 * by SX_MARGIN_STEP of the interval (at least SX_MARGIN_STEP_MIN_US, at most
 * SX_MARGIN_MAX in all) and holds everybody for one interval.  Such a 429
 * says that a request arrived early at StockX's gateway although it left
 * on time: the network between us varies in delay (a few tens of ms), so
 * one step covers what 0 to 40 ms of jitter takes at 1 request/s.  What
 * was learnt is kept: the widening decays by SX_MARGIN_DECAY of the
 * interval only after SX_MARGIN_DECAY_AFTER successes in a row (hours at
 * StockX's rate), and survives a restart (the caller persists it).  A 429
 * that follows another one pauses
 * every worker for a full-jitter backoff, cuts the effective rate by
 * SX_RATE_CUT (never below the floor) and counts toward the circuit
 * breaker; successes raise the rate by SX_RATE_STEP of the configured rate
 * each.  Retry-After, when sent, is always honoured.
 *
 * A clock reading more than SX_CLOCK_STEP_US behind the latest one is a
 * step back of the clock: every deadline moves back with it, so no wait
 * grows by the size of the step.
 *-------------------------------------------------------------------------
 */
#include "limiter.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define SX_RATE_CUT           0.7
#define SX_RATE_STEP          0.02
#define SX_RATE_FLOOR         0.1
#define SX_MARGIN_STEP        0.05
#define SX_MARGIN_STEP_MIN_US INT64_C(1000)
#define SX_MARGIN_MAX         0.25
#define SX_MARGIN_DECAY       0.01
#define SX_MARGIN_DECAY_AFTER 10000
#define SX_PENDING_POLL_US    INT64_C(1000)
#define SX_CLOCK_STEP_US      SX_USECS_PER_SEC

double
sx_rate_floor(const SxLimiterConfig *cfg)
{
	return cfg->requests_per_second * SX_RATE_FLOOR;
}

static double
current_rate(SxLimiter *l, const SxLimiterConfig *cfg)
{
	/* A reload may have lowered the configured rate below ours. */
	if (l->effective_rate > cfg->requests_per_second || l->effective_rate <= 0)
		l->effective_rate = cfg->requests_per_second;
	if (l->effective_rate < sx_rate_floor(cfg))
		l->effective_rate = sx_rate_floor(cfg);
	return l->effective_rate;
}

/* 1/rate without any margin: the gap the gateway itself insists on. */
static int64_t
base_interval(SxLimiter *l, const SxLimiterConfig *cfg)
{
	return (int64_t) ceil((double) SX_USECS_PER_SEC / current_rate(l, cfg));
}

static int64_t
emission_interval(SxLimiter *l, const SxLimiterConfig *cfg)
{
	double margin = cfg->margin_ms > 0 ? cfg->margin_ms * 1000.0 : 0.0;

	return base_interval(l, cfg) + (int64_t) ceil(margin) + l->extra_margin;
}

/* The current emission interval, margin included (for the status view). */
int64_t
sx_limiter_interval(const SxLimiter *l, const SxLimiterConfig *cfg)
{
	SxLimiter copy = *l;

	return emission_interval(&copy, cfg);
}

/* The margin in force: configured plus widened, in us. */
int64_t
sx_limiter_margin(const SxLimiter *l, const SxLimiterConfig *cfg)
{
	SxLimiter copy = *l;

	return emission_interval(&copy, cfg) - base_interval(&copy, cfg);
}

int64_t
sx_day_of(int64_t wall_us)
{
	int64_t day = wall_us / SX_USECS_PER_DAY;

	if (wall_us < 0 && wall_us % SX_USECS_PER_DAY != 0)
		day--;
	return day;
}

/* 00:00 UTC after the limiter's quota day: when its count starts again. */
int64_t
sx_quota_resets_at(const SxLimiter *l)
{
	return (l->quota_day + 1) * SX_USECS_PER_DAY;
}

/* The quota day only moves forward: a wall clock stepping back keeps the count. */
static void
roll_quota_day(SxLimiter *l, int64_t day)
{
	if (day > l->quota_day)
	{
		l->quota_day = day;
		l->requests_today = 0;
	}
}

/* ---------------------------------------------------------------- rolling window */

static int64_t
bucket_of(int64_t wall)
{
	int64_t b = wall / SX_WINDOW_BUCKET_US;

	if (wall < 0 && wall % SX_WINDOW_BUCKET_US != 0)
		b--;
	return b;
}

static int32_t *
bucket_slot(SxLimiter *l, int64_t b)
{
	int64_t i = b % SX_WINDOW_BUCKETS;

	return &l->window[i < 0 ? i + SX_WINDOW_BUCKETS : i];
}

/* Move the ring forward to bucket b, emptying the buckets it passes. */
static void
window_roll(SxLimiter *l, int64_t b)
{
	int64_t k;

	if (b <= l->window_latest)
		return;
	if (b - l->window_latest >= SX_WINDOW_BUCKETS)
		memset(l->window, 0, sizeof(l->window));
	else
		for (k = l->window_latest + 1; k <= b; k++)
			*bucket_slot(l, k) = 0;
	l->window_latest = b;
}

/*
 * Count a request sent at wall.  A wall clock that stepped back counts it
 * in the latest bucket: the record only moves forward.
 */
static void
window_note(SxLimiter *l, int64_t wall)
{
	int64_t b = bucket_of(wall);

	window_roll(l, b);
	(*bucket_slot(l, b < l->window_latest ? l->window_latest : b))++;
}

/*
 * The oldest bucket of the window that ends in the bucket of wall (never
 * before the latest bucket: a clock that stepped back sees the window of
 * the latest send), and the last one, into *last.
 */
static int64_t
window_from(const SxLimiter *l, int64_t wall_now, int64_t *last)
{
	int64_t b = bucket_of(wall_now);
	int64_t from;

	if (b < l->window_latest)
		b = l->window_latest;
	from = b - (SX_WINDOW_SPAN - 1);
	if (from < l->window_latest - (SX_WINDOW_BUCKETS - 1))
		from = l->window_latest - (SX_WINDOW_BUCKETS - 1);
	*last = l->window_latest;
	return from;
}

static int32_t
bucket_count(const SxLimiter *l, int64_t b)
{
	int64_t i = b % SX_WINDOW_BUCKETS;

	return l->window[i < 0 ? i + SX_WINDOW_BUCKETS : i];
}

/* Requests of the rolling window that ends at wall_now. */
int64_t
sx_limiter_window_count(const SxLimiter *l, int64_t wall_now)
{
	int64_t last;
	int64_t k = window_from(l, wall_now, &last);
	int64_t sum = 0;

	for (; k <= last; k++)
		sum += bucket_count(l, k);
	return sum;
}

/*
 * When the window lets the next request go: wall_now when it is under the
 * limit, else when enough of its oldest buckets have left it (bucket k
 * leaves the window when bucket k + SX_WINDOW_SPAN begins).
 */
static int64_t
window_next_allowed(const SxLimiter *l, int64_t limit, int64_t wall_now)
{
	int64_t sum = sx_limiter_window_count(l, wall_now);
	int64_t last;
	int64_t k = window_from(l, wall_now, &last);

	for (; sum >= limit && k <= last; k++)
	{
		sum -= bucket_count(l, k);
		if (sum < limit)
			return (k + SX_WINDOW_SPAN) * SX_WINDOW_BUCKET_US;
	}
	return wall_now;
}

/*
 * When the next request may go as far as the daily limit is concerned:
 * wall_now when both the UTC day and the rolling 24 hours have room, else
 * the later of 00:00 UTC (the day's count spent) and the moment the window
 * has room again.
 */
int64_t
sx_limiter_next_allowed(const SxLimiter *l, const SxLimiterConfig *cfg, int64_t wall_now)
{
	int64_t next = wall_now;
	int64_t w;

	if (cfg->daily_limit <= 0)
		return wall_now;
	if (sx_day_of(wall_now) <= l->quota_day && l->requests_today >= cfg->daily_limit)
		next = sx_quota_resets_at(l);
	w = window_next_allowed(l, cfg->daily_limit, wall_now);
	return w > next ? w : next;
}

/*
 * Merge what was persisted (after a restart, or by another database's
 * workers): the larger count of the day, of each bucket of the window,
 * and the wider margin win.
 */
void
sx_limiter_import(SxLimiter *l, const SxPersisted *in)
{
	int i;

	sx_limiter_note_persisted(l, in->day, in->requests);
	if (in->margin_us > l->extra_margin)
		l->extra_margin = in->margin_us;
	if (in->window_latest < 0)
		return;
	window_roll(l, in->window_latest);
	for (i = 0; i < SX_WINDOW_BUCKETS; i++)
	{
		int64_t b = in->window_latest - SX_WINDOW_BUCKETS + 1 + i;
		int32_t *slot;

		if (b > l->window_latest || b <= l->window_latest - SX_WINDOW_BUCKETS)
			continue;
		slot = bucket_slot(l, b);
		if (in->window[i] > *slot)
			*slot = in->window[i];
	}
}

/* What to persist of the limiter. */
void
sx_limiter_export(const SxLimiter *l, SxPersisted *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	out->day = l->quota_day;
	out->requests = l->requests_today;
	out->margin_us = l->extra_margin;
	out->window_latest = l->window_latest;
	for (i = 0; i < SX_WINDOW_BUCKETS; i++)
		out->window[i] = bucket_count(l, l->window_latest - SX_WINDOW_BUCKETS + 1 + i);
}

static void
shift_deadline(int64_t *t, int64_t by)
{
	if (*t != 0)
		*t += by;
}

/* Notice a clock that stepped back and move every deadline with it. */
static void
advance_clock(SxLimiter *l, int64_t now)
{
	if (l->last_now != 0 && now < l->last_now - SX_CLOCK_STEP_US)
	{
		int64_t step = now - l->last_now;

		shift_deadline(&l->tat, step);
		shift_deadline(&l->pending_since, step);
		shift_deadline(&l->paused_until, step);
		shift_deadline(&l->circuit_open_until, step);
		shift_deadline(&l->probe_sent_at, step);
		l->last_now = now;
	}
	if (now > l->last_now)
		l->last_now = now;
}

void
sx_limiter_init(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now, int64_t day)
{
	memset(l, 0, sizeof(*l));
	l->tat = now;
	l->last_now = now;
	l->effective_rate = cfg->requests_per_second;
	l->circuit = SX_CIRCUIT_CLOSED;
	l->quota_day = day;
}

/* An open circuit whose time is up becomes half-open. */
static void
advance_circuit(SxLimiter *l, int64_t now)
{
	if (l->circuit == SX_CIRCUIT_OPEN && now >= l->circuit_open_until)
	{
		l->circuit = SX_CIRCUIT_HALF_OPEN;
		l->probe_in_flight = false;
	}
}

bool
sx_limiter_circuit_refuses(const SxLimiter *l, int64_t now)
{
	return l->circuit == SX_CIRCUIT_OPEN && now < l->circuit_open_until;
}

/* Whether the daily limit holds the next request back (UTC day or rolling 24 hours). */
bool
sx_limiter_quota_spent(SxLimiter *l, const SxLimiterConfig *cfg, int64_t wall_now)
{
	roll_quota_day(l, sx_day_of(wall_now));
	return sx_limiter_next_allowed(l, cfg, wall_now) > wall_now;
}

static int64_t
tolerance(SxLimiter *l, const SxLimiterConfig *cfg)
{
	return emission_interval(l, cfg) * (cfg->burst > 1 ? cfg->burst - 1 : 0);
}

int64_t
sx_limiter_next_slot(const SxLimiter *l, const SxLimiterConfig *cfg, int64_t now)
{
	SxLimiter copy = *l;
	int64_t slot;

	advance_clock(&copy, now);
	slot = copy.tat - tolerance(&copy, cfg);
	if (slot < now)
		slot = now;
	if (slot < copy.paused_until)
		slot = copy.paused_until;
	return slot;
}

SxVerdict
sx_limiter_acquire(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now, int64_t wall_now,
                   int64_t *wait_us)
{
	int64_t interval;
	int64_t tat;
	int burst = cfg->burst > 1 ? cfg->burst : 1;

	*wait_us = 0;
	advance_clock(l, now);
	advance_circuit(l, now);
	if (l->circuit == SX_CIRCUIT_OPEN)
	{
		*wait_us = l->circuit_open_until - now;
		return SX_REFUSED_CIRCUIT;
	}

	if (sx_limiter_quota_spent(l, cfg, wall_now))
	{
		*wait_us = sx_limiter_next_allowed(l, cfg, wall_now) - wall_now;
		return SX_REFUSED_QUOTA;
	}

	if (now < l->paused_until)
	{
		*wait_us = l->paused_until - now;
		return SX_PAUSED;
	}

	/*
	 * Half-open: exactly one probe; the others wait for its verdict.  A
	 * probe whose sender vanished without a verdict (its request must have
	 * ended by probe_timeout_ms) no longer blocks the next one.
	 */
	if (l->circuit == SX_CIRCUIT_HALF_OPEN && l->probe_in_flight &&
	    now - l->probe_sent_at > cfg->probe_timeout_ms * 1000)
		l->probe_in_flight = false;
	if (l->circuit == SX_CIRCUIT_HALF_OPEN && l->probe_in_flight)
	{
		*wait_us = emission_interval(l, cfg);
		return SX_WAIT;
	}

	/* slots granted but not yet sent hold the next one back */
	if (l->pending_sends >= burst)
	{
		int64_t expires = l->pending_since + cfg->send_timeout_ms * 1000;

		if (now < expires)
		{
			*wait_us = expires - now < SX_PENDING_POLL_US ? expires - now : SX_PENDING_POLL_US;
			return SX_WAIT;
		}
		l->pending_sends = 0;
		l->pending_since = 0;
	}

	interval = emission_interval(l, cfg);
	tat = l->tat > now ? l->tat : now;
	if (tat - tolerance(l, cfg) > now)
	{
		*wait_us = tat - tolerance(l, cfg) - now;
		return SX_WAIT;
	}

	l->tat = tat + interval;
	if (l->pending_sends++ == 0)
		l->pending_since = now;
	l->requests_today++;
	window_note(l, wall_now);
	if (l->circuit == SX_CIRCUIT_HALF_OPEN)
	{
		l->probe_in_flight = true;
		l->probe_sent_at = now;
	}
	return SX_GO;
}

/*
 * A granted request left at sent_at: the next one goes an interval later.
 * A request sent again (a retry on a fresh connection after the kept one
 * had died) moves the next slot again but was already counted as sent.
 */
void
sx_limiter_sent(SxLimiter *l, const SxLimiterConfig *cfg, int64_t sent_at, bool first)
{
	int64_t next;

	advance_clock(l, sent_at);
	if (first && l->pending_sends > 0 && --l->pending_sends == 0)
		l->pending_since = 0;
	next = sent_at + emission_interval(l, cfg);
	if (next > l->tat)
		l->tat = next;
}

/*
 * A granted slot handed to a sender outside our control (a program that
 * called stockx_enrich_acquire()), which sends at some moment in the next
 * slack_us: the next slot goes an interval after the latest it may send.
 */
void
sx_limiter_sent_within(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now, int64_t slack_us)
{
	int64_t next;

	sx_limiter_sent(l, cfg, now, true);
	next = now + (slack_us > 0 ? slack_us : 0) + emission_interval(l, cfg);
	if (next > l->tat)
		l->tat = next;
}

/* A granted slot whose request was never sent (it still counts as used). */
void
sx_limiter_unsent(SxLimiter *l)
{
	if (l->pending_sends > 0 && --l->pending_sends == 0)
		l->pending_since = 0;
}

void
sx_limiter_on_success(SxLimiter *l, const SxLimiterConfig *cfg)
{
	double rate = current_rate(l, cfg);

	l->consecutive_429 = 0;
	if (l->circuit == SX_CIRCUIT_HALF_OPEN)
	{
		l->circuit = SX_CIRCUIT_CLOSED;
		l->circuit_trips = 0;
		l->probe_in_flight = false;
	}
	rate += cfg->requests_per_second * SX_RATE_STEP;
	l->effective_rate = rate > cfg->requests_per_second ? cfg->requests_per_second : rate;

	/* the widened margin comes back down slowly while nothing is refused */
	if (++l->successes >= SX_MARGIN_DECAY_AFTER)
	{
		int64_t step = (int64_t) ((double) base_interval(l, cfg) * SX_MARGIN_DECAY);

		if (step < SX_MARGIN_STEP_MIN_US)
			step = SX_MARGIN_STEP_MIN_US;
		l->extra_margin = l->extra_margin > step ? l->extra_margin - step : 0;
		l->successes = 0;
	}
}

/*
 * Record a 429; returns the pause now in force for every worker.
 * retry_after_us < 0 means the answer carried no usable Retry-After.
 */
int64_t
sx_limiter_on_429(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now, int64_t retry_after_us,
                  double unit_random)
{
	int64_t pause;
	int64_t base;

	advance_clock(l, now);
	l->consecutive_429++;
	l->responses_429_total++;
	l->successes = 0;
	base = base_interval(l, cfg);

	if (l->consecutive_429 == 1)
	{
		/* isolated: we were a hair early; leave more room from now on */
		int64_t step = (int64_t) ((double) base * SX_MARGIN_STEP);
		int64_t cap = (int64_t) ((double) base * SX_MARGIN_MAX);

		if (step < SX_MARGIN_STEP_MIN_US)
			step = SX_MARGIN_STEP_MIN_US;
		l->extra_margin += step;
		if (l->extra_margin > cap)
			l->extra_margin = cap > step ? cap : step;
		pause = emission_interval(l, cfg);
	}
	else
	{
		double rate = current_rate(l, cfg) * SX_RATE_CUT;

		pause = sx_backoff_us(cfg->backoff_base_ms, cfg->backoff_max_ms, l->consecutive_429 - 1,
		                      unit_random);
		l->effective_rate = rate < sx_rate_floor(cfg) ? sx_rate_floor(cfg) : rate;
	}
	if (retry_after_us > pause)
		pause = retry_after_us;
	if (now + pause > l->paused_until)
		l->paused_until = now + pause;
	if (l->paused_until > l->tat)
		l->tat = l->paused_until;

	if (l->circuit == SX_CIRCUIT_HALF_OPEN ||
	    (cfg->circuit_threshold > 0 && l->consecutive_429 >= cfg->circuit_threshold &&
	     l->circuit == SX_CIRCUIT_CLOSED))
	{
		int64_t open_us = cfg->circuit_open_ms * 1000;
		int i;

		for (i = 0; i < l->circuit_trips && open_us < SX_CIRCUIT_MAX_OPEN_US; i++)
			open_us *= 2;
		if (open_us > SX_CIRCUIT_MAX_OPEN_US)
			open_us = SX_CIRCUIT_MAX_OPEN_US;
		l->circuit = SX_CIRCUIT_OPEN;
		l->circuit_open_until = now + open_us;
		l->circuit_trips++;
		l->probe_in_flight = false;
	}
	return l->paused_until - now;
}

/*
 * What the status of an answer tells the limiter.  Success only when
 * StockX's API itself answered: 2xx, and the 400 and 404 its document
 * gives for ids it does not know.  429 is the rate limit.  Everything else
 * decides nothing (status 0, no answer at all; 5xx; a redirect; 401 and 403,
 * which a gateway may give before any rate is counted; other 4xx): it
 * neither ends a run of 429s nor closes a half-open circuit.
 */
SxAnswerClass
sx_answer_class(long status)
{
	if (status == 429)
		return SX_ANSWER_RATE_LIMITED;
	if ((status >= 200 && status <= 299) || status == 400 || status == 404)
		return SX_ANSWER_SUCCESS;
	return SX_ANSWER_NEUTRAL;
}

/* A probe that ended neither in success nor in 429 decides nothing. */
void
sx_limiter_on_other_failure(SxLimiter *l)
{
	if (l->circuit == SX_CIRCUIT_HALF_OPEN)
		l->probe_in_flight = false;
}

/* Merge a count read back from durable storage (after a restart). */
void
sx_limiter_note_persisted(SxLimiter *l, int64_t day, int64_t requests)
{
	if (day == l->quota_day && requests > l->requests_today)
		l->requests_today = requests;
	else if (day > l->quota_day)
	{
		l->quota_day = day;
		l->requests_today = requests;
	}
}

/* Full jitter: random(0, min(max, base * 2^attempt)). */
int64_t
sx_backoff_us(int base_ms, int max_ms, int attempt, double unit_random)
{
	int64_t cap = (int64_t) max_ms * 1000;
	int64_t ceiling = (int64_t) base_ms * 1000;
	int i;

	for (i = 0; i < attempt && ceiling < cap; i++)
		ceiling *= 2;
	if (ceiling > cap)
		ceiling = cap;
	if (unit_random < 0)
		unit_random = 0;
	if (unit_random >= 1)
		unit_random = 0.999999;
	return (int64_t) (unit_random * (double) ceiling);
}

/* days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe;
	int64_t doy;
	int64_t doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
month_number(const char *s)
{
	static const char *const names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int i;

	for (i = 0; i < 12; i++)
		if (strncmp(s, names[i], 3) == 0 && s[3] == ' ')
			return i + 1;
	return 0;
}

/* Two ASCII digits; false for anything else (signs and blanks included). */
static bool
two_digits(const char *s, int *out)
{
	if (!isdigit((unsigned char) s[0]) || !isdigit((unsigned char) s[1]))
		return false;
	*out = (s[0] - '0') * 10 + (s[1] - '0');
	return true;
}

/*
 * Parse a Retry-After value: delta-seconds or an IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT").  Returns the delay in microseconds
 * from now (0 for a date in the past), or -1 when the value is malformed.
 * Delays are capped at one day.
 */
int64_t
sx_parse_retry_after(const char *value, int64_t wall_now)
{
	const char *p = value;
	int64_t result;

	if (value == NULL)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (isdigit((unsigned char) *p))
	{
		int64_t secs = 0;

		for (; isdigit((unsigned char) *p); p++)
		{
			secs = secs * 10 + (*p - '0');
			if (secs > 86400)
				secs = 86400;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0')
			return -1;
		return secs * SX_USECS_PER_SEC;
	}
	else
	{
		static const char *const wdays[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
		static const int days_in_month[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
		int day, year, hh, mm, ss;
		int month;
		int dim;
		int i;
		bool wday_ok = false;
		size_t len = strlen(p);
		int64_t when;

		/*
		 * IMF-fixdate only, which has a fixed layout: "Sun, 06 Nov 1994
		 * 08:49:37 GMT" (the obsolete forms are not sent by modern servers).
		 */
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' ||
		    p[16] != ' ' || p[19] != ':' || p[22] != ':' || strncmp(p + 25, " GMT", 4) != 0)
			return -1;
		for (i = 0; i < 7; i++)
			wday_ok |= strncmp(p, wdays[i], 3) == 0;
		if (!wday_ok || !two_digits(p + 5, &day) || !two_digits(p + 12, &year) ||
		    !two_digits(p + 14, &i) || !two_digits(p + 17, &hh) || !two_digits(p + 20, &mm) ||
		    !two_digits(p + 23, &ss))
			return -1;
		year = year * 100 + i;
		month = month_number(p + 8);
		if (month == 0 || year < 1970 || hh > 23 || mm > 59 || ss > 60 || day < 1)
			return -1;
		dim = days_in_month[month - 1];
		if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
			dim = 29;
		if (day > dim)
			return -1;
		when = (days_from_civil(year, month, day) * 86400 + hh * 3600 + mm * 60 + ss) *
		       SX_USECS_PER_SEC;
		result = when - wall_now;
		if (result < 0)
			result = 0;
		if (result > SX_USECS_PER_DAY)
			result = SX_USECS_PER_DAY;
		return result;
	}
}
