/*-------------------------------------------------------------------------
 * stockx_enrich.c
 *	  Module entry: _PG_init refuses to load unless preloaded, then hands
 *	  off to the settings (settings.c) and to shared memory (shmem.c).
 *	  The SQL-callable functions are in the sql_*.c files, the background
 *	  worker in worker.c.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "settings.h"
#include "shmem.h"

#if PG_VERSION_NUM >= 180000
PG_MODULE_MAGIC_EXT(.name = "stockx_enrich", .version = STOCKX_ENRICH_VERSION);
#else
PG_MODULE_MAGIC;
#endif

void _PG_init(void);

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("stockx_enrich must be loaded via shared_preload_libraries"),
		                errhint("Add stockx_enrich to shared_preload_libraries in postgresql.conf "
		                        "and restart the server.")));
	stockx_settings_define();
	stockx_shmem_init();
}
