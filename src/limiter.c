/*-------------------------------------------------------------------------
 * limiter.c
 *	  Pure arithmetic of the rate limiter (see limiter.h).
 *
 * GCRA: each request moves the theoretical arrival time (tat) forward by
 * one emission interval T = 1/effective_rate; a request may go when
 * tat - tau <= now, where tau = T * (burst - 1) is the tolerance.
 *
 * A 429 pauses everybody until the later of Retry-After and a full-jitter
 * backoff, cuts the effective rate by SX_RATE_CUT (never below the floor),
 * and counts toward the circuit breaker.  Successes raise the rate again by
 * SX_RATE_STEP of the configured rate each.
 *-------------------------------------------------------------------------
 */
#include "limiter.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define SX_RATE_CUT   0.7
#define SX_RATE_STEP  0.02
#define SX_RATE_FLOOR 0.1

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

static int64_t
emission_interval(SxLimiter *l, const SxLimiterConfig *cfg)
{
	double rate = current_rate(l, cfg);

	return (int64_t) ceil((double) SX_USECS_PER_SEC / rate);
}

int64_t
sx_day_of(int64_t now)
{
	int64_t day = now / SX_USECS_PER_DAY;

	if (now < 0 && now % SX_USECS_PER_DAY != 0)
		day--;
	return day;
}

/* 00:00 UTC after the limiter's quota day: when its count starts again. */
int64_t
sx_quota_resets_at(const SxLimiter *l)
{
	return (l->quota_day + 1) * SX_USECS_PER_DAY;
}

static void
roll_quota_day(SxLimiter *l, int64_t now)
{
	int64_t day = sx_day_of(now);

	if (day != l->quota_day)
	{
		l->quota_day = day;
		l->requests_today = 0;
	}
}

void
sx_limiter_init(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now)
{
	memset(l, 0, sizeof(*l));
	l->tat = now;
	l->effective_rate = cfg->requests_per_second;
	l->circuit = SX_CIRCUIT_CLOSED;
	l->quota_day = sx_day_of(now);
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

bool
sx_limiter_quota_spent(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now)
{
	roll_quota_day(l, now);
	return cfg->daily_limit > 0 && l->requests_today >= cfg->daily_limit;
}

int64_t
sx_limiter_next_slot(const SxLimiter *l, const SxLimiterConfig *cfg, int64_t now)
{
	SxLimiter copy = *l;
	int64_t tau = emission_interval(&copy, cfg) * (cfg->burst > 1 ? cfg->burst - 1 : 0);
	int64_t slot = copy.tat - tau;

	if (slot < now)
		slot = now;
	if (slot < copy.paused_until)
		slot = copy.paused_until;
	return slot;
}

SxVerdict
sx_limiter_acquire(SxLimiter *l, const SxLimiterConfig *cfg, int64_t now, int64_t *wait_us)
{
	int64_t interval;
	int64_t tau;
	int64_t tat;

	*wait_us = 0;

	advance_circuit(l, now);
	if (l->circuit == SX_CIRCUIT_OPEN)
	{
		*wait_us = l->circuit_open_until - now;
		return SX_REFUSED_CIRCUIT;
	}

	if (sx_limiter_quota_spent(l, cfg, now))
	{
		*wait_us = sx_quota_resets_at(l) - now;
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

	interval = emission_interval(l, cfg);
	tau = interval * (cfg->burst > 1 ? cfg->burst - 1 : 0);
	tat = l->tat > now ? l->tat : now;
	if (tat - tau > now)
	{
		*wait_us = tat - tau - now;
		return SX_WAIT;
	}

	l->tat = tat + interval;
	l->requests_today++;
	if (l->circuit == SX_CIRCUIT_HALF_OPEN)
	{
		l->probe_in_flight = true;
		l->probe_sent_at = now;
	}
	return SX_GO;
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
	double rate = current_rate(l, cfg);

	l->consecutive_429++;
	l->responses_429_total++;

	pause = sx_backoff_us(cfg->backoff_base_ms, cfg->backoff_max_ms, l->consecutive_429 - 1,
	                      unit_random);
	if (retry_after_us > pause)
		pause = retry_after_us;
	if (now + pause > l->paused_until)
		l->paused_until = now + pause;

	rate *= SX_RATE_CUT;
	l->effective_rate = rate < sx_rate_floor(cfg) ? sx_rate_floor(cfg) : rate;

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

/* A probe that ended neither in success nor in 429 decides nothing. */
void
sx_limiter_on_other_failure(SxLimiter *l)
{
	if (l->circuit == SX_CIRCUIT_HALF_OPEN)
		l->probe_in_flight = false;
}

/* Merge a count read back from durable storage (after a restart). */
void
sx_limiter_note_persisted(SxLimiter *l, int64_t now, int64_t day, int64_t requests)
{
	roll_quota_day(l, now);
	if (day == l->quota_day && requests > l->requests_today)
		l->requests_today = requests;
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
sx_parse_retry_after(const char *value, int64_t now)
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
		result = when - now;
		if (result < 0)
			result = 0;
		if (result > SX_USECS_PER_DAY)
			result = SX_USECS_PER_DAY;
		return result;
	}
}
