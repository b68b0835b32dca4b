/*-------------------------------------------------------------------------
 * credentials.c
 *	  The StockX secrets of this process.
 *
 * A secret comes from stockx_enrich.credentials_file when that file names
 * it, else from the setting of the same name.  The file holds "key = value"
 * lines (api_key, client_id, client_secret, refresh_token, access_token;
 * '#' starts a comment; values may be single-quoted) and must not be
 * accessible by group or others.  Its contents never reach a log line or an
 * error message: errors name the file, the line number and the key only.
 * Copies live in TopMemoryContext and are zeroed before being replaced.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "storage/fd.h"
#include "utils/memutils.h"

#include "credentials.h"
#include "stockx_enrich.h"

static const char *const secret_names[SX_SECRET_COUNT] = { "api_key", "client_id", "client_secret",
	                                                       "refresh_token", "access_token" };

/* values read from the credentials file (NULL = not in the file) */
static char *file_secrets[SX_SECRET_COUNT];

static void
forget_file_secrets(void)
{
	int i;

	for (i = 0; i < SX_SECRET_COUNT; i++)
	{
		if (file_secrets[i] != NULL)
		{
			explicit_bzero(file_secrets[i], strlen(file_secrets[i]));
			pfree(file_secrets[i]);
			file_secrets[i] = NULL;
		}
	}
}

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static void
parse_line(const char *path, int lineno, char *line)
{
	char *eq;
	char *key;
	char *value;
	size_t len;
	int i;

	line = trim(line);
	if (line[0] == '\0' || line[0] == '#')
		return;
	eq = strchr(line, '=');
	if (eq == NULL)
		ereport(ERROR, (errcode(ERRCODE_CONFIG_FILE_ERROR),
		                errmsg("syntax error in stockx_enrich credentials file \"%s\" line %d",
		                       path, lineno),
		                errhint("Each line must read key = value.")));
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	len = strlen(value);
	if (len >= 2 && value[0] == '\'' && value[len - 1] == '\'')
	{
		value[len - 1] = '\0';
		value++;
	}
	for (i = 0; i < SX_SECRET_COUNT; i++)
	{
		if (strcmp(key, secret_names[i]) == 0)
		{
			if (file_secrets[i] != NULL)
			{
				explicit_bzero(file_secrets[i], strlen(file_secrets[i]));
				pfree(file_secrets[i]);
			}
			file_secrets[i] = MemoryContextStrdup(TopMemoryContext, value);
			return;
		}
	}
	ereport(
	    ERROR,
	    (errcode(ERRCODE_CONFIG_FILE_ERROR),
	     errmsg("unknown key \"%s\" in stockx_enrich credentials file \"%s\" line %d", key, path,
	            lineno),
	     errhint("Known keys: api_key, client_id, client_secret, refresh_token, access_token.")));
}

/* (Re)read stockx_enrich.credentials_file; call at start and after SIGHUP. */
void
stockx_credentials_load(void)
{
	const char *path = stockx_credentials_file;
	struct stat st;
	FILE *f;
	char line[4096];
	volatile int lineno = 0;

	forget_file_secrets();
	if (path == NULL || path[0] == '\0')
		return;

	if (stat(path, &st) != 0)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not stat stockx_enrich credentials file \"%s\": %m", path),
		                errhint("Check stockx_enrich.credentials_file.")));
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		ereport(
		    ERROR,
		    (errcode(ERRCODE_CONFIG_FILE_ERROR),
		     errmsg("stockx_enrich credentials file \"%s\" is accessible by group or others", path),
		     errhint("Make it readable by the server's user only: chmod 600.")));
	f = AllocateFile(path, "r");
	if (f == NULL)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not open stockx_enrich credentials file \"%s\": %m", path),
		                errhint("Check stockx_enrich.credentials_file.")));
	PG_TRY();
	{
		while (fgets(line, sizeof(line), f) != NULL)
			parse_line(path, ++lineno, line);
	}
	PG_FINALLY();
	{
		explicit_bzero(line, sizeof(line));
		FreeFile(f);
	}
	PG_END_TRY();
}

const char *
stockx_secret(StockxSecret which)
{
	static char **const settings[SX_SECRET_COUNT] = { &stockx_api_key, &stockx_client_id,
		                                              &stockx_client_secret, &stockx_refresh_token,
		                                              &stockx_access_token };
	const char *value = file_secrets[which] ? file_secrets[which] : *settings[which];

	return (value != NULL && value[0] != '\0') ? value : NULL;
}

bool
stockx_credentials_configured(const char **missing)
{
	bool can_refresh = stockx_secret(SX_SECRET_REFRESH_TOKEN) &&
	                   stockx_secret(SX_SECRET_CLIENT_ID) && stockx_secret(SX_SECRET_CLIENT_SECRET);

	if (stockx_secret(SX_SECRET_API_KEY) == NULL)
	{
		*missing = "stockx_enrich.api_key";
		return false;
	}
	if (!can_refresh && stockx_secret(SX_SECRET_ACCESS_TOKEN) == NULL)
	{
		*missing = "stockx_enrich.refresh_token, stockx_enrich.client_id and "
		           "stockx_enrich.client_secret (or stockx_enrich.access_token)";
		return false;
	}
	return true;
}
