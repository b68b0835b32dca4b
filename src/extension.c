/*-------------------------------------------------------------------------
 * extension.c
 *	  The extension in the current database: its OID, its schema (which a
 *	  rename may have changed: it is looked up, never assumed), its owner,
 *	  and the refusal of a database whose installed version is not the
 *	  library's.  Looked up once per transaction by the store and events.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "extension.h"

/* Per process: the extension found last, and its schema. */
static Oid extension_oid = InvalidOid;
static Oid extension_owner = InvalidOid;
static Oid schema_oid = InvalidOid;
static char *schema_quoted = NULL;

/*
 * The schema and the installed version of an extension (what
 * get_extension_schema() does from 16 on, and the version with it).
 */
static Oid
extension_schema(Oid ext, char **version, Oid *owner)
{
	Relation rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tup;
	Oid nsp = InvalidOid;

	*version = NULL;
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool isnull;
		Datum v = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
		*owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
		if (!isnull)
			*version = TextDatumGetCString(v);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/*
 * Find the extension (one index lookup per transaction) and remember its
 * schema and owner; callers compare stockx_extension_oid() with what they
 * prepared for (a dropped and recreated extension is another).  The library speaks
 * the schema of its own version only: a database still on an older one
 * must be updated first.
 */
void
stockx_extension_find(void)
{
	Oid ext = get_extension_oid("stockx_enrich", true);
	char *version;
	Oid nsp;
	Oid owner = InvalidOid;

	if (!OidIsValid(ext))
		ereport(
		    ERROR,
		    (errcode(ERRCODE_UNDEFINED_OBJECT),
		     errmsg("extension \"stockx_enrich\" is not installed in this database"),
		     errhint(
		         "Run CREATE EXTENSION stockx_enrich in the database that holds the catalogue.")));
	if (ext == extension_oid)
		return;
	nsp = extension_schema(ext, &version, &owner);
	if (version == NULL || strcmp(version, STOCKX_ENRICH_VERSION) != 0)
		ereport(
		    ERROR,
		    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		     errmsg(
		         "extension \"stockx_enrich\" is installed at version %s in this database, but the library is version %s",
		         version ? version : "(none)", STOCKX_ENRICH_VERSION),
		     errhint("Run ALTER EXTENSION stockx_enrich UPDATE in this database.")));
	if (schema_quoted != NULL)
		pfree(schema_quoted);
	schema_oid = nsp;
	schema_quoted =
	    MemoryContextStrdup(TopMemoryContext, quote_identifier(get_namespace_name(schema_oid)));
	extension_oid = ext;
	extension_owner = owner;
}

Oid
stockx_extension_oid(void)
{
	return extension_oid;
}

Oid
stockx_extension_owner(void)
{
	return extension_owner;
}

Oid
stockx_extension_schema_oid(void)
{
	return schema_oid;
}

/* The extension's schema, quoted for SQL. */
const char *
stockx_extension_schema(void)
{
	return schema_quoted;
}

/* The OID of the extension's relation relname, InvalidOid when there is none. */
Oid
stockx_extension_relid(const char *relname)
{
	return get_relname_relid(relname, schema_oid);
}
