/*-------------------------------------------------------------------------
 * credentials.c
 *	  The StockX secrets of this process.
 *
 * A secret comes from stockx_enrich.credentials_file when that file names
 * it, else from the setting of the same name.  The file holds "key = value"
 * lines (api_key, client_id, client_secret, refresh_token, access_token;
 * '#' starts a comment; values may be single-quoted).  It is opened once
 * and checked on the open descriptor: a regular file, owned by the
 * server's user, not accessible by group or others.  Its contents never
 * reach a log line or an error message: errors name the file and the line
 * number only.  Values with control characters are refused (they could
 * inject an HTTP header).
 *
 * A file that cannot be used stops a start (ERROR); on a reload it only
 * WARNs and the previous secrets stay in force.  When StockX rotates the
 * refresh token, or a superuser logs in (stockx_enrich_redeem_code()), the
 * new one is written to the file atomically (a private temporary file
 * renamed over it).  Copies live in TopMemoryContext and are zeroed before
 * they are freed.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "credentials.h"
#include "settings.h"

#define SX_LINE_MAX 8192

static const char *const secret_keys[SX_SECRET_COUNT] = { "api_key", "client_id", "client_secret",
	                                                      "refresh_token", "access_token" };

/* values read from the credentials file (NULL = not in the file) */
static char *file_secrets[SX_SECRET_COUNT];

/* Why the file could not be used; never any of its content. */
typedef struct FileProblem
{
	int sqlerrcode;
	char message[MAXPGPATH + 200];
	const char *hint;
} FileProblem;

static void
zero_free(char *s)
{
	if (s != NULL)
	{
		explicit_bzero(s, strlen(s));
		pfree(s);
	}
}

static void
forget(char *values[])
{
	int i;

	for (i = 0; i < SX_SECRET_COUNT; i++)
	{
		zero_free(values[i]);
		values[i] = NULL;
	}
}

static bool problem(FileProblem *pr, int sqlerrcode, const char *hint, const char *fmt, ...)
    pg_attribute_printf(4, 5);

static bool
problem(FileProblem *pr, int sqlerrcode, const char *hint, const char *fmt, ...)
{
	va_list ap;

	pr->sqlerrcode = sqlerrcode;
	pr->hint = hint;
	va_start(ap, fmt);
	vsnprintf(pr->message, sizeof(pr->message), fmt, ap);
	va_end(ap);
	return false;
}

/* Open the file and check it on the descriptor; -1 with *pr set on failure. */
static int
open_checked(const char *path, FileProblem *pr)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
	{
		problem(pr, ERRCODE_CONFIG_FILE_ERROR, "Check stockx_enrich.credentials_file.",
		        "could not open stockx_enrich credentials file \"%s\": %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		problem(pr, ERRCODE_CONFIG_FILE_ERROR, "Check stockx_enrich.credentials_file.",
		        "stockx_enrich credentials file \"%s\" is not a regular file", path);
	else if (st.st_uid != geteuid())
		problem(pr, ERRCODE_CONFIG_FILE_ERROR,
		        "The file must belong to the user the server runs as.",
		        "stockx_enrich credentials file \"%s\" is not owned by the server's user", path);
	else if (st.st_mode & (S_IRWXG | S_IRWXO))
		problem(pr, ERRCODE_CONFIG_FILE_ERROR,
		        "Make it readable by the server's user only: chmod 600.",
		        "stockx_enrich credentials file \"%s\" is accessible by group or others", path);
	else
		return fd;
	close(fd);
	return -1;
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

/* The key of a "key = value" line, or -1; comments and blank lines give -2. */
static int
parse_line(char *line, char **value)
{
	char *eq;
	char *key;
	size_t len;
	int i;

	line = trim(line);
	if (line[0] == '\0' || line[0] == '#')
		return -2;
	eq = strchr(line, '=');
	if (eq == NULL)
		return -1;
	*eq = '\0';
	key = trim(line);
	*value = trim(eq + 1);
	len = strlen(*value);
	if (len >= 2 && (*value)[0] == '\'' && (*value)[len - 1] == '\'')
	{
		(*value)[len - 1] = '\0';
		(*value)++;
	}
	for (i = 0; i < SX_SECRET_COUNT; i++)
		if (strcmp(key, secret_keys[i]) == 0)
			return i;
	return -3;
}

/* Read the file into values[] (palloc'd in TopMemoryContext); false with *pr set. */
static bool
read_file(const char *path, char *values[], FileProblem *pr)
{
	int fd = open_checked(path, pr);
	FILE *f;
	char *line;
	int lineno = 0;
	bool ok = true;

	if (fd < 0)
		return false;
	f = fdopen(fd, "r");
	if (f == NULL)
	{
		close(fd);
		return problem(pr, ERRCODE_CONFIG_FILE_ERROR, NULL,
		               "could not read stockx_enrich credentials file \"%s\": %s", path,
		               strerror(errno));
	}
	line = MemoryContextAlloc(TopMemoryContext, SX_LINE_MAX);
	while (ok && fgets(line, SX_LINE_MAX, f) != NULL)
	{
		char *value = NULL;
		size_t len = strlen(line);
		int which;

		lineno++;
		if (len == SX_LINE_MAX - 1 && line[len - 1] != '\n')
		{
			ok = problem(pr, ERRCODE_CONFIG_FILE_ERROR, NULL,
			             "line %d of stockx_enrich credentials file \"%s\" is too long", lineno,
			             path);
			break;
		}
		which = parse_line(line, &value);
		if (which == -2)
			continue;
		if (which == -1)
			ok = problem(pr, ERRCODE_CONFIG_FILE_ERROR, "Each line must read key = value.",
			             "syntax error in stockx_enrich credentials file \"%s\" line %d", path,
			             lineno);
		else if (which == -3)
			ok = problem(pr, ERRCODE_CONFIG_FILE_ERROR,
			             "Known keys: api_key, client_id, client_secret, refresh_token, "
			             "access_token.",
			             "unknown key in stockx_enrich credentials file \"%s\" line %d", path,
			             lineno);
		else if (!sx_secret_is_clean(value))
			ok = problem(pr, ERRCODE_CONFIG_FILE_ERROR,
			             "Secrets must not contain control characters such as carriage returns.",
			             "the value in stockx_enrich credentials file \"%s\" line %d contains "
			             "control characters",
			             path, lineno);
		else
		{
			zero_free(values[which]);
			values[which] = MemoryContextStrdup(TopMemoryContext, value);
		}
	}
	if (ok && ferror(f))
		ok = problem(pr, ERRCODE_CONFIG_FILE_ERROR, NULL,
		             "could not read stockx_enrich credentials file \"%s\"", path);
	explicit_bzero(line, SX_LINE_MAX);
	pfree(line);
	fclose(f);
	if (!ok)
		forget(values);
	return ok;
}

/* Read the file into a fresh set; on failure the current set is untouched. */
static bool
load(FileProblem *pr)
{
	const char *path = stockx_settings_credentials_file();
	char *fresh[SX_SECRET_COUNT] = { 0 };

	if (path != NULL && !read_file(path, fresh, pr))
		return false;
	forget(file_secrets);
	memcpy(file_secrets, fresh, sizeof(fresh));
	return true;
}

/* (Re)read stockx_enrich.credentials_file; ERROR when it cannot be used. */
void
stockx_credentials_load(void)
{
	FileProblem pr;

	if (!load(&pr))
		ereport(ERROR, (errcode(pr.sqlerrcode), errmsg_internal("%s", pr.message),
		                pr.hint ? errhint("%s", pr.hint) : 0));
}

/* After SIGHUP: a file that cannot be used keeps the previous secrets. */
bool
stockx_credentials_reload(void)
{
	FileProblem pr;

	if (load(&pr))
		return true;
	ereport(WARNING, (errcode(pr.sqlerrcode), errmsg_internal("%s", pr.message),
	                  errdetail("stockx_enrich is keeping the previous credentials."),
	                  pr.hint ? errhint("%s", pr.hint) : 0));
	return false;
}

const char *
stockx_secret(StockxSecret which)
{
	const char *value = file_secrets[which];

	if (value != NULL)
		return value[0] != '\0' ? value : NULL;
	return stockx_settings_secret(which);
}

bool
stockx_credentials_in_file(StockxSecret which)
{
	return file_secrets[which] != NULL;
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

static bool
write_all(int fd, const char *data, size_t len)
{
	while (len > 0)
	{
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		data += n;
		len -= n;
	}
	return true;
}

/*
 * Write a refresh token to the credentials file at path, keeping every
 * other line (the first refresh_token line is replaced, later ones
 * dropped; none: one is appended): a private temporary file in the same
 * directory, flushed, then renamed over the old one.  False (with *errbuf
 * saying why, never the token) when it cannot be written.
 */
static bool
write_refresh_token(const char *path, const char *token, char *errbuf, size_t errlen)
{
	FileProblem pr;
	StringInfoData out;
	char *tmp;
	char *dir;
	char *slash;
	FILE *f = NULL;
	int fd;
	char *line;
	bool replaced = false;
	bool ok;

	if (!sx_secret_is_clean(token) || strchr(token, '\'') != NULL)
	{
		snprintf(errbuf, errlen, "the new token has characters the credentials file cannot hold");
		return false;
	}
	fd = open_checked(path, &pr);
	if (fd < 0 || (f = fdopen(fd, "r")) == NULL)
	{
		if (fd >= 0)
			close(fd);
		snprintf(errbuf, errlen, "%s", fd < 0 ? pr.message : "could not read the file");
		return false;
	}

	initStringInfo(&out);
	line = palloc(SX_LINE_MAX);
	while (fgets(line, SX_LINE_MAX, f) != NULL)
	{
		char *copy = pstrdup(line);
		char *value;

		if (parse_line(copy, &value) == SX_SECRET_REFRESH_TOKEN)
		{
			if (!replaced)
				appendStringInfo(&out, "refresh_token = '%s'\n", token);
			replaced = true;
		}
		else
			appendStringInfoString(&out, line);
		explicit_bzero(copy, strlen(copy));
		pfree(copy);
	}
	fclose(f);
	if (!replaced)
	{
		/* a last line without its newline stays a line of its own */
		if (out.len > 0 && out.data[out.len - 1] != '\n')
			appendStringInfoChar(&out, '\n');
		appendStringInfo(&out, "refresh_token = '%s'\n", token);
	}

	tmp = psprintf("%s.tmp.%d", path, MyProcPid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_IRUSR | S_IWUSR);
	ok = fd >= 0 && write_all(fd, out.data, out.len) && pg_fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	if (ok && rename(tmp, path) != 0)
		ok = false;
	if (!ok)
	{
		snprintf(errbuf, errlen, "could not write \"%s\": %s", tmp, strerror(errno));
		unlink(tmp);
	}
	else
	{
		/* make the rename durable */
		dir = pstrdup(path);
		slash = strrchr(dir, '/');
		if (slash != NULL)
		{
			*(slash == dir ? slash + 1 : slash) = '\0';
			(void) fsync_fname_ext(dir, true, true, LOG);
		}
		pfree(dir);
		zero_free(file_secrets[SX_SECRET_REFRESH_TOKEN]);
		file_secrets[SX_SECRET_REFRESH_TOKEN] = MemoryContextStrdup(TopMemoryContext, token);
	}
	explicit_bzero(out.data, out.len);
	pfree(out.data);
	explicit_bzero(line, SX_LINE_MAX);
	pfree(line);
	pfree(tmp);
	return ok;
}

/*
 * A rotated refresh token: written back to the credentials file when the
 * one it replaces came from there.  False (with *errbuf saying why, never
 * the token) when the token did not come from the file or cannot be
 * written.
 */
bool
stockx_credentials_save_refresh_token(const char *token, char *errbuf, size_t errlen)
{
	const char *path = stockx_settings_credentials_file();

	if (path == NULL || !stockx_credentials_in_file(SX_SECRET_REFRESH_TOKEN))
	{
		snprintf(errbuf, errlen,
		         "the refresh token comes from stockx_enrich.refresh_token, not from "
		         "stockx_enrich.credentials_file");
		return false;
	}
	return write_refresh_token(path, token, errbuf, errlen);
}

/*
 * The refresh token of a new login (stockx_enrich_redeem_code()): written
 * to the credentials file whether or not it held one, where it overrides
 * stockx_enrich.refresh_token.  The file must exist (with the rest of the
 * secrets).  False (with *errbuf saying why, never the token) when no file
 * is configured or it cannot be written.
 */
bool
stockx_credentials_write_refresh_token(const char *token, char *errbuf, size_t errlen)
{
	const char *path = stockx_settings_credentials_file();

	if (path == NULL)
	{
		snprintf(errbuf, errlen, "stockx_enrich.credentials_file is not set");
		return false;
	}
	return write_refresh_token(path, token, errbuf, errlen);
}
