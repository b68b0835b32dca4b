/*-------------------------------------------------------------------------
 * compat.h
 *	  The few server APIs that differ between the PostgreSQL majors we
 *	  build against (15 to 18), behind one name each.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_COMPAT_H
#define STOCKX_COMPAT_H

#include "storage/latch.h"
#include "utils/guc.h"

/* GUC strings and "extra" blocks: plain malloc before 16, GUC's own allocator since */
#if PG_VERSION_NUM >= 160000
#define sx_guc_malloc(size) guc_malloc(LOG, (size))
#define sx_guc_free(ptr)    guc_free(ptr)
#else
#define sx_guc_malloc(size) malloc(size)
#define sx_guc_free(ptr)    free(ptr)
#endif

/* WaitEventSets belong to a resource owner since 17 (NULL: freed by hand) */
#if PG_VERSION_NUM >= 170000
#define sx_create_wait_event_set(nevents) CreateWaitEventSet(NULL, (nevents))
#else
#define sx_create_wait_event_set(nevents) CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

#endif /* STOCKX_COMPAT_H */
