/*-------------------------------------------------------------------------
 * slots.c
 *	  Runs and their workers in shared memory, and the only code that
 *	  writes them.  A run slot is reserved with its worker slots by
 *	  stockx_enrich_start(); each worker attaches to its slot, publishes
 *	  its state and counters, merges its stop reason when it finishes and
 *	  detaches on exit; the last worker of a run frees the run slot and
 *	  records how the run ended.
 *
 * Lock: "stockx_enrich slots" (StockxSlotsShared.lock) guards every field
 * here.  It is never held across I/O or a wait, and nothing inside it can
 * raise an error.
 *
 * Slots whose process is gone are reclaimed by start, stop and wait: a
 * slot reserved for a worker that never attached within a minute (its
 * launch failed and nobody cleaned up) and a slot whose worker pid no
 * longer exists.  Stop wakes workers through their PGPROC latch;
 * no pid is ever signalled.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "settings.h"
#include "slots.h"

/* the name of the area and of its lock, as pg_stat_activity shows waits on it */
#define SX_SLOTS_TRANCHE "stockx_enrich slots"

/* a reservation older than this whose worker never attached is dead */
#define SX_ATTACH_TIMEOUT_MS (60 * 1000)
#define SX_FINISHED_RUNS     32

typedef struct StockxWorkerSlot
{
	bool in_use;
	bool exiting; /* finished its loop, writing its last words */
	pid_t pid;    /* 0 while launching */
	PGPROC *proc; /* set when the worker attaches */
	Oid database;
	int64 run_id;
	int run_index;
	pid_t reserved_by; /* the backend of stockx_enrich_start() */
	TimestampTz reserved_at;
	StockxWorkerState state;
	char current_sku[STOCKX_SKU_BUF];
	StockxCounters counters;
	int in_flight;
	TimestampTz started_at;
	TimestampTz last_checkpoint_at;
	int64 memory_bytes;
} StockxWorkerSlot;

typedef struct StockxRunSlot
{
	bool in_use;
	Oid database;
	int64 run_id;
	int64 max_products; /* 0 = no limit */
	int64 taken;        /* products handed to workers so far */
	bool stop_requested;
	StockxStopReason stop_reason;
} StockxRunSlot;

typedef struct StockxFinishedRun
{
	Oid database;
	int64 run_id;
	StockxStopReason reason;
} StockxFinishedRun;

typedef struct StockxSlotsShared
{
	LWLock *lock;
	int nslots;
	int finished_next;
	StockxFinishedRun finished[SX_FINISHED_RUNS];
	StockxRunSlot *runs; /* nslots entries, after workers[] */
	StockxWorkerSlot workers[FLEXIBLE_ARRAY_MEMBER];
} StockxSlotsShared;

static StockxSlotsShared *shared = NULL;

static Size
stockx_slots_shmem_size(int nslots)
{
	Size size = offsetof(StockxSlotsShared, workers);

	size = add_size(size, mul_size(nslots, sizeof(StockxWorkerSlot)));
	size = MAXALIGN(size);
	size = add_size(size, mul_size(nslots, sizeof(StockxRunSlot)));
	return size;
}

/* Ask for the area and its lock (from the shmem_request_hook). */
void
stockx_slots_shmem_request(void)
{
	RequestAddinShmemSpace(stockx_slots_shmem_size(stockx_settings_max_workers()));
	RequestNamedLWLockTranche(SX_SLOTS_TRANCHE, 1);
}

/* Attach to the area, making it the first time (AddinShmemInitLock held). */
void
stockx_slots_shmem_startup(void)
{
	int nslots = stockx_settings_max_workers();
	bool found;

	shared = ShmemInitStruct(SX_SLOTS_TRANCHE, stockx_slots_shmem_size(nslots), &found);
	if (!found)
	{
		memset(shared, 0, stockx_slots_shmem_size(nslots));
		shared->lock = &GetNamedLWLockTranche(SX_SLOTS_TRANCHE)->lock;
		shared->nslots = nslots;
		shared->runs =
		    (StockxRunSlot *) ((char *) shared + MAXALIGN(offsetof(StockxSlotsShared, workers) +
		                                                  nslots * sizeof(StockxWorkerSlot)));
	}
}

int
stockx_slots_capacity(void)
{
	return shared->nslots;
}

static bool
process_gone(pid_t pid)
{
	return kill(pid, 0) != 0 && errno == ESRCH;
}

static bool
run_has_workers(int run_index, int64 run_id)
{
	int i;

	for (i = 0; i < shared->nslots; i++)
		if (shared->workers[i].in_use && shared->workers[i].run_index == run_index &&
		    shared->workers[i].run_id == run_id)
			return true;
	return false;
}

/*
 * Free worker slots whose process is gone and run slots left without
 * workers; returns how many worker slots were freed.
 */
static int
reclaim_locked(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int reclaimed = 0;
	int i;

	for (i = 0; i < shared->nslots; i++)
	{
		StockxWorkerSlot *w = &shared->workers[i];
		bool dead;

		if (!w->in_use)
			continue;
		if (w->pid == 0)
		{
			/*
			 * A launched worker may attach after its starter has gone: only
			 * a reservation nobody attached to for a long time is dead.
			 */
			dead = TimestampDifferenceExceeds(w->reserved_at, now, SX_ATTACH_TIMEOUT_MS);
		}
		else
			dead = process_gone(w->pid);
		if (dead)
		{
			memset(w, 0, sizeof(*w));
			reclaimed++;
		}
	}
	for (i = 0; i < shared->nslots; i++)
	{
		StockxRunSlot *run = &shared->runs[i];

		if (run->in_use && !run_has_workers(i, run->run_id))
			memset(run, 0, sizeof(*run));
	}
	return reclaimed;
}

static void
report_reclaimed(int reclaimed)
{
	if (reclaimed > 0)
		ereport(LOG, (errmsg("stockx_enrich: reclaimed %d worker slots whose process is gone",
		                     reclaimed)));
}

void
stockx_slots_reclaim(void)
{
	int reclaimed;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	reclaimed = reclaim_locked();
	LWLockRelease(shared->lock);
	report_reclaimed(reclaimed);
}

/*
 * Reserve a run slot and its worker slots for run_id, unless a run of the
 * database is active already.
 */
StockxReserveResult
stockx_slots_reserve(Oid database, int64 run_id, int64 max_products, int workers, int *run_index,
                     int *slots, int *free_slots, int64 *active_run_id)
{
	TimestampTz now = GetCurrentTimestamp();
	int nfree = 0;
	int reclaimed;
	int i;

	*run_index = -1;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	reclaimed = reclaim_locked();
	for (i = 0; i < shared->nslots; i++)
	{
		if (shared->runs[i].in_use && shared->runs[i].database == database)
		{
			*active_run_id = shared->runs[i].run_id;
			LWLockRelease(shared->lock);
			report_reclaimed(reclaimed);
			return SX_RESERVE_RUN_ACTIVE;
		}
		if (!shared->runs[i].in_use && *run_index < 0)
			*run_index = i;
	}
	for (i = 0; i < shared->nslots; i++)
		if (!shared->workers[i].in_use && nfree < workers)
			slots[nfree++] = i;
	*free_slots = nfree;
	if (*run_index < 0 || nfree < workers)
	{
		LWLockRelease(shared->lock);
		report_reclaimed(reclaimed);
		return SX_RESERVE_NO_SLOTS;
	}

	{
		StockxRunSlot *run = &shared->runs[*run_index];

		memset(run, 0, sizeof(*run));
		run->in_use = true;
		run->database = database;
		run->run_id = run_id;
		run->max_products = max_products;
	}
	for (i = 0; i < workers; i++)
	{
		StockxWorkerSlot *w = &shared->workers[slots[i]];

		memset(w, 0, sizeof(*w));
		w->in_use = true;
		w->database = database;
		w->run_id = run_id;
		w->run_index = *run_index;
		w->reserved_by = MyProcPid;
		w->reserved_at = now;
		w->state = SX_STATE_STARTING;
		w->started_at = now;
	}
	LWLockRelease(shared->lock);
	report_reclaimed(reclaimed);
	return SX_RESERVED;
}

/*
 * Give back the slots of a run whose workers never attached, and the run
 * slot when no worker of it is left.  Also the error cleanup of
 * stockx_enrich_start(), so it cannot raise an error.
 */
void
stockx_slots_release_unattached(int64 run_id, int run_index)
{
	int i;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < shared->nslots; i++)
	{
		StockxWorkerSlot *w = &shared->workers[i];

		if (w->in_use && w->run_id == run_id && w->pid == 0)
			memset(w, 0, sizeof(*w));
	}
	if (run_index >= 0 && shared->runs[run_index].in_use &&
	    shared->runs[run_index].run_id == run_id && !run_has_workers(run_index, run_id))
		memset(&shared->runs[run_index], 0, sizeof(StockxRunSlot));
	LWLockRelease(shared->lock);
}

/*
 * A launch that ended (BGWH_STOPPED): free the slot if the worker never
 * attached; false when it did (it ran, and maybe finished already).
 */
bool
stockx_slots_release_slot(int slot, int64 run_id)
{
	StockxWorkerSlot *w = &shared->workers[slot];
	bool freed = false;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (w->in_use && w->run_id == run_id && w->pid == 0)
	{
		memset(w, 0, sizeof(*w));
		freed = true;
	}
	LWLockRelease(shared->lock);
	return freed;
}

/* The worker takes the slot reserved for it; false when it was given up. */
bool
stockx_slots_attach(int slot, int64 run_id)
{
	StockxWorkerSlot *w;
	bool ok = false;

	if (slot < 0 || slot >= shared->nslots)
		return false;
	w = &shared->workers[slot];
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (w->in_use && w->run_id == run_id && w->pid == 0)
	{
		w->pid = MyProcPid;
		w->proc = MyProc;
		w->started_at = GetCurrentTimestamp();
		ok = true;
	}
	LWLockRelease(shared->lock);
	return ok;
}

void
stockx_slots_publish(int slot, const StockxWorkerReport *report)
{
	StockxWorkerSlot *w = &shared->workers[slot];
	TimestampTz now = report->checkpoint ? GetCurrentTimestamp() : 0;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	w->state = report->state;
	if (report->sku != NULL)
		strlcpy(w->current_sku, report->sku, sizeof(w->current_sku));
	if (report->counters != NULL)
		w->counters = *report->counters;
	if (report->memory_bytes >= 0)
		w->memory_bytes = report->memory_bytes;
	w->in_flight = report->in_flight;
	if (report->checkpoint)
		w->last_checkpoint_at = now;
	LWLockRelease(shared->lock);
}

bool
stockx_slots_stop_requested(int run_index, int64 run_id)
{
	StockxRunSlot *run = &shared->runs[run_index];
	bool stop;

	LWLockAcquire(shared->lock, LW_SHARED);
	stop = !run->in_use || run->run_id != run_id || run->stop_requested;
	LWLockRelease(shared->lock);
	return stop;
}

/* Take up to want products from the run's max_products budget. */
int
stockx_slots_take_products(int run_index, int64 run_id, int want)
{
	StockxRunSlot *run = &shared->runs[run_index];
	int got = want;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (run->run_id == run_id && run->max_products > 0)
	{
		got = (int) Min((int64) want, Max(run->max_products - run->taken, 0));
		run->taken += got;
	}
	LWLockRelease(shared->lock);
	return got;
}

void
stockx_slots_return_products(int run_index, int64 run_id, int n)
{
	StockxRunSlot *run = &shared->runs[run_index];

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (run->run_id == run_id && run->max_products > 0)
		run->taken -= n;
	LWLockRelease(shared->lock);
}

/* Ids of the runs of a database that are active now. */
int
stockx_slots_active_runs(Oid database, int64 *run_ids, int max)
{
	int i, n = 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots && n < max; i++)
		if (shared->runs[i].in_use && shared->runs[i].database == database)
			run_ids[n++] = shared->runs[i].run_id;
	LWLockRelease(shared->lock);
	return n;
}

/*
 * Merge why this worker ended into its run's stop reason; *last tells
 * whether every other worker of the run has finished too.
 */
StockxStopReason
stockx_slots_finish(int slot, StockxStopReason reason, bool *last)
{
	StockxWorkerSlot *me = &shared->workers[slot];
	StockxRunSlot *run = &shared->runs[me->run_index];
	StockxStopReason final_reason;
	int i;

	*last = true;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	me->exiting = true;
	me->state = SX_STATE_STOPPING;
	if (reason > run->stop_reason)
		run->stop_reason = reason;
	final_reason = run->stop_reason;
	for (i = 0; i < shared->nslots; i++)
	{
		StockxWorkerSlot *w = &shared->workers[i];

		if (w->in_use && !w->exiting && w->run_id == me->run_id)
			*last = false;
	}
	LWLockRelease(shared->lock);
	return final_reason;
}

/* Leave the slot (on every way out); the last worker frees the run slot. */
void
stockx_slots_detach(int slot)
{
	StockxWorkerSlot *me = &shared->workers[slot];

	if (LWLockHeldByMe(shared->lock))
		LWLockRelease(shared->lock);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (me->in_use && me->pid == MyProcPid)
	{
		int run_index = me->run_index;
		int64 run_id = me->run_id;
		StockxRunSlot *run = &shared->runs[run_index];

		memset(me, 0, sizeof(*me));
		if (run->in_use && run->run_id == run_id && !run_has_workers(run_index, run_id))
		{
			StockxFinishedRun *f = &shared->finished[shared->finished_next];

			f->database = run->database;
			f->run_id = run_id;
			f->reason = run->stop_reason != SX_STOP_NONE ? run->stop_reason : SX_STOP_ERROR;
			shared->finished_next = (shared->finished_next + 1) % SX_FINISHED_RUNS;
			memset(run, 0, sizeof(*run));
		}
	}
	LWLockRelease(shared->lock);
}

/* Pids of every attached worker of the cluster (their leases are alive). */
int
stockx_slots_live_pids(int32 *pids, int max)
{
	int i, n = 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots && n < max; i++)
		if (shared->workers[i].in_use && shared->workers[i].pid != 0)
			pids[n++] = shared->workers[i].pid;
	LWLockRelease(shared->lock);
	return n;
}

/*
 * Ask every run of a database to stop and wake its workers through their
 * latches; returns how many workers the runs have.
 */
int
stockx_slots_request_stop(Oid database)
{
	int i, n = 0;
	int reclaimed;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	reclaimed = reclaim_locked();
	for (i = 0; i < shared->nslots; i++)
		if (shared->runs[i].in_use && shared->runs[i].database == database)
			shared->runs[i].stop_requested = true;
	for (i = 0; i < shared->nslots; i++)
	{
		StockxWorkerSlot *w = &shared->workers[i];

		if (w->in_use && w->database == database)
		{
			n++;
			if (w->proc != NULL)
				SetLatch(&w->proc->procLatch);
		}
	}
	LWLockRelease(shared->lock);
	report_reclaimed(reclaimed);
	return n;
}

/*
 * Workers in use (launching or running) of a database, or of every
 * database when it is InvalidOid, and of one run, or of all when run_id
 * is 0.
 */
int
stockx_slots_count(Oid database, int64 run_id)
{
	int i, n = 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots; i++)
	{
		StockxWorkerSlot *w = &shared->workers[i];

		if (w->in_use && (!OidIsValid(database) || w->database == database) &&
		    (run_id == 0 || w->run_id == run_id))
			n++;
	}
	LWLockRelease(shared->lock);
	return n;
}

/* How a recently finished run ended, if it is still remembered. */
bool
stockx_slots_finished_reason(Oid database, int64 run_id, StockxStopReason *reason)
{
	bool found = false;
	int i;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < SX_FINISHED_RUNS && !found; i++)
	{
		if (shared->finished[i].run_id == run_id && shared->finished[i].database == database)
		{
			*reason = shared->finished[i].reason;
			found = true;
		}
	}
	LWLockRelease(shared->lock);
	return found;
}

/* Copy the slots in use. */
int
stockx_slots_snapshot(StockxWorkerView *out, int max)
{
	int i, n = 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (i = 0; i < shared->nslots && n < max; i++)
	{
		StockxWorkerSlot *w = &shared->workers[i];
		StockxWorkerView *v = &out[n];

		if (!w->in_use)
			continue;
		v->pid = w->pid;
		v->database = w->database;
		v->run_id = w->run_id;
		v->state = w->state;
		memcpy(v->current_sku, w->current_sku, sizeof(v->current_sku));
		v->counters = w->counters;
		v->in_flight = w->in_flight;
		v->started_at = w->started_at;
		v->last_checkpoint_at = w->last_checkpoint_at;
		v->memory_bytes = w->memory_bytes;
		n++;
	}
	LWLockRelease(shared->lock);
	return n;
}
