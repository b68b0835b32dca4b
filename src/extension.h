/*-------------------------------------------------------------------------
 * extension.h
 *	  The extension in the current database, found by OID.
 *-------------------------------------------------------------------------
 */
#ifndef STOCKX_EXTENSION_H
#define STOCKX_EXTENSION_H

extern void stockx_extension_find(void);
extern Oid stockx_extension_oid(void);
extern Oid stockx_extension_owner(void);
extern Oid stockx_extension_schema_oid(void);
extern const char *stockx_extension_schema(void);
extern Oid stockx_extension_relid(const char *relname);

#endif /* STOCKX_EXTENSION_H */
