# Defect: the extension's SQL ran under whatever search_path was in force.
# stockx_enrich_start() and stockx_enrich_wait() ran their SPI queries under
# the caller's search_path (nextval('...') and now() resolved there), the
# workers never pinned theirs (they took the role's), the plpgsql functions
# put the extension's schema before pg_catalog, and the schema name was
# pasted into a string literal, so a schema with a quote in its name broke
# the run.
#
# Expected now:
#  (a) a role whose session runs SET search_path = evil, pg_catalog, public
#      and whose workers get the same search_path from ALTER ROLE, with
#      look-alike functions (nextval, now, btrim, length, make_interval,
#      string_agg, min, max, unnest, ...), operators (= and <> on text, = on
#      integer and bigint, < and <= on timestamptz) and types (domains jsonb,
#      uuid, date, text) in schema evil, and look-alike functions and = in
#      the extension's own schema: through enqueue, start, wait, requeue and
#      stop none of them is ever called (evil.calls stays empty), the run ids
#      returned exist in stockx_run, and the runs end 'done' with every row
#      enriched;
#  (b) in fresh databases, with the extension in schema "Shop Catalog.v2"
#      (given at CREATE EXTENSION) and in schema "we""ird's" (PostgreSQL 15
#      refuses quotes in the schema of CREATE EXTENSION, so an extension
#      created in schema shop whose schema is then renamed): the rows queued
#      (by stockx_enrich_enqueue, resp. INSERT) are enriched by a run that
#      start returns and that ends 'done'.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('search_path');
admin_reset();

sub sql { my ($q, $db) = @_; return $node->safe_psql($db // 'postgres', $q); }

# ---------------------------------------------------------------- (a)
sql(q{
CREATE ROLE sp_user LOGIN;
GRANT EXECUTE ON FUNCTION stockx_enrich_start(int, bigint), stockx_enrich_stop(int),
	stockx_enrich_requeue(text) TO sp_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO sp_user;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO sp_user;

CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE TABLE evil.calls (fn text, backend_type text, at timestamptz);
GRANT INSERT, SELECT ON evil.calls TO PUBLIC;

CREATE FUNCTION evil.note(fn text) RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog AS $$
BEGIN
	INSERT INTO evil.calls
	SELECT fn, a.backend_type, clock_timestamp() FROM pg_stat_get_activity(pg_backend_pid()) a;
	RETURN true;
END $$;
});

# name, arguments (with defaults), result, body result expression
my @functions = (
	[ 'nextval', 'text', 'bigint', 'nextval($1::regclass)' ],
	[ 'now', '', 'timestamptz', 'now()' ],
	[ 'clock_timestamp', '', 'timestamptz', 'clock_timestamp()' ],
	[ 'statement_timestamp', '', 'timestamptz', 'statement_timestamp()' ],
	[ 'btrim', 'text', 'text', 'btrim($1)' ],
	[ 'length', 'text', 'integer', 'length($1)' ],
	[ 'lower', 'text', 'text', 'lower($1)' ],
	[ 'upper', 'text', 'text', 'upper($1)' ],
	[ 'quote_literal', 'text', 'text', 'quote_literal($1)' ],
	[ 'quote_ident', 'text', 'text', 'quote_ident($1)' ],
	[ 'pg_backend_pid', '', 'integer', 'pg_backend_pid()' ],
	[ 'current_setting', 'text', 'text', 'current_setting($1)' ],
	[ 'current_setting', 'text, boolean', 'text', 'current_setting($1, $2)' ],
	[ 'set_config', 'text, text, boolean', 'text', 'set_config($1, $2, $3)' ],
	[ 'random', '', 'double precision', 'random()' ],
	[ 'make_interval',
		'years int DEFAULT 0, months int DEFAULT 0, weeks int DEFAULT 0, days int DEFAULT 0, '
		  . 'hours int DEFAULT 0, mins int DEFAULT 0, secs double precision DEFAULT 0',
		'interval', 'make_interval(years, months, weeks, days, hours, mins, secs)' ],
	[ 'texteq', 'text, text', 'boolean', '$1 OPERATOR(pg_catalog.=) $2' ],
	[ 'textne', 'text, text', 'boolean', '$1 OPERATOR(pg_catalog.<>) $2' ],
	[ 'int8eq', 'bigint, bigint', 'boolean', '$1 OPERATOR(pg_catalog.=) $2' ],
	[ 'int4eq', 'integer, integer', 'boolean', '$1 OPERATOR(pg_catalog.=) $2' ],
	[ 'tslt', 'timestamptz, timestamptz', 'boolean', '$1 OPERATOR(pg_catalog.<) $2' ],
	[ 'tsle', 'timestamptz, timestamptz', 'boolean', '$1 OPERATOR(pg_catalog.<=) $2' ],
	[ 'sagg', 'text, text, text', 'text',
		"CASE WHEN \$1 IS NULL THEN \$2 ELSE \$1 || \$3 || \$2 END" ],
	[ 'nsmaller', 'numeric, numeric', 'numeric', 'least($1, $2)' ],
	[ 'nlarger', 'numeric, numeric', 'numeric', 'greatest($1, $2)' ]);

sub hostile_function
{
	my ($schema, $name, $args, $result, $expr) = @_;
	return qq{CREATE FUNCTION $schema.$name($args) RETURNS $result LANGUAGE plpgsql
		CALLED ON NULL INPUT SET search_path = pg_catalog AS \$f\$
		BEGIN PERFORM evil.note('$schema.$name'); RETURN $expr; END \$f\$;\n};
}

sql(join('', map { hostile_function('evil', @$_) } @functions) . q{
CREATE FUNCTION evil.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql
SET search_path = pg_catalog AS $f$
BEGIN PERFORM evil.note('evil.unnest'); RETURN QUERY SELECT unnest($1); END $f$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textne);
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8eq);
CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.int4eq);
CREATE OPERATOR evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.tslt);
CREATE OPERATOR evil.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.tsle);
CREATE AGGREGATE evil.string_agg(text, text) (SFUNC = evil.sagg, STYPE = text);
CREATE AGGREGATE evil.min(numeric) (SFUNC = evil.nsmaller, STYPE = numeric);
CREATE AGGREGATE evil.max(numeric) (SFUNC = evil.nlarger, STYPE = numeric);
CREATE DOMAIN evil.jsonb AS pg_catalog.jsonb CHECK (evil.note('evil.jsonb'));
CREATE DOMAIN evil.uuid AS pg_catalog.uuid CHECK (evil.note('evil.uuid'));
CREATE DOMAIN evil.date AS pg_catalog.date CHECK (evil.note('evil.date'));
CREATE DOMAIN evil.text AS pg_catalog.text CHECK (evil.note('evil.text'));
});

# look-alikes in the extension's own schema (public), which the plpgsql
# functions must not put before pg_catalog
sql(join('', map { hostile_function('public', @$_) }
	  grep { $_->[0] =~ /^(btrim|length|now|quote_literal|texteq)$/ } @functions) . q{
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.texteq);
});

sql('ALTER ROLE sp_user SET search_path = evil, pg_catalog, public');
is(sql('SELECT count(*) FROM evil.calls'), 0, '(a) evil.calls starts empty');

# As sp_user, with the hostile search_path.
sub hostile
{
	my ($q) = @_;
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET search_path = evil, pg_catalog, public;\n$q",
		extra_params => [ '-U', 'sp_user' ]);
	diag("$q: $err") if $rc != 0;
	return $out;
}

admin_config({ malformed_skus => ['SP-BAD'] });
is(hostile(q{SELECT stockx_enrich_enqueue(ARRAY['SP-0001', 'SP-0002', 'SP-0003', 'SP-BAD'])}),
	4, '(a) enqueue queues 4 SKUs');
my $run1 = hostile('SELECT stockx_enrich_start(2)');
like($run1, qr/^\d+$/, '(a) start returns a run id');
$run1 = 0 unless $run1 =~ /^\d+$/;
is(hostile("SELECT stockx_enrich_wait($run1, 60000)"), 'done', '(a) the first run ends done');
is(sql("SELECT count(*) FROM stockx_run WHERE run_id = $run1"), 1,
	'(a) the run id start returned exists in stockx_run');
is(sql(q{SELECT status FROM stockx_product WHERE sku = 'SP-BAD'}), 'failed',
	'(a) the SKU with a malformed answer failed');
is(hostile(q{SELECT stockx_enrich_requeue('failed')}), 1, '(a) requeue puts it back');

admin_config({ malformed_skus => [] });
my $run2 = hostile('SELECT stockx_enrich_start()');
like($run2, qr/^\d+$/, '(a) a second start returns a run id');
$run2 = 0 unless $run2 =~ /^\d+$/;
is(hostile("SELECT stockx_enrich_wait($run2, 60000)"), 'done', '(a) the second run ends done');
is(sql("SELECT count(*) FROM stockx_run WHERE run_id = $run2 AND $run2 <> $run1"), 1,
	'(a) its new run id exists in stockx_run');
is(hostile('SELECT stockx_enrich_stop()'), 0, '(a) stop finds no worker left');
is(sql(q{SELECT count(*) FILTER (WHERE status = 'enriched') || '/' || count(*) FROM stockx_product}),
	'4/4', '(a) every row enriched');

my $calls = sql(q{SELECT coalesce(string_agg(fn || ' (' || n || 'x by ' || apps || ')', ', '), '')
	FROM (SELECT fn, count(*) AS n, string_agg(DISTINCT coalesce(backend_type, '?'), '/') AS apps
	        FROM evil.calls GROUP BY fn ORDER BY fn) c});
is($calls, '', '(a) no hostile function, operator or type was ever used');

# ---------------------------------------------------------------- (b)
# (b1) a schema name that needs quoting, given at CREATE EXTENSION
sql('CREATE DATABASE weird1');
sql(q{CREATE SCHEMA "Shop Catalog.v2"; CREATE EXTENSION stockx_enrich SCHEMA "Shop Catalog.v2"},
	'weird1');
is(sql(q{SELECT "Shop Catalog.v2".stockx_enrich_enqueue(ARRAY['WQ-0001', 'WQ-0002'])}, 'weird1'),
	2, '(b1) enqueue in schema "Shop Catalog.v2"');
my ($rc, $run, $err) = $node->psql('weird1', q{SELECT "Shop Catalog.v2".stockx_enrich_start()});
like($run, qr/^\d+$/, '(b1) start returns a run id') or diag($err);
$run = 0 unless $run =~ /^\d+$/;
is(sql(qq{SELECT "Shop Catalog.v2".stockx_enrich_wait($run, 60000)}, 'weird1'), 'done',
	'(b1) the run ends done');
is(sql(q{SELECT count(*) FROM "Shop Catalog.v2".stockx_product WHERE status = 'enriched'}, 'weird1'),
	2, '(b1) both rows enriched');

# (b2) schema "we""ird's": PostgreSQL 15 refuses quotes in the schema of
# CREATE EXTENSION, so the schema is renamed afterwards.  The plpgsql
# functions keep the old name in their search_path (PostgreSQL substitutes
# @extschema@ once, at CREATE EXTENSION), so the rows are queued by INSERT.
sql('CREATE DATABASE weird2');
sql(q{CREATE SCHEMA shop; CREATE EXTENSION stockx_enrich SCHEMA shop;
	ALTER SCHEMA shop RENAME TO "we""ird's"}, 'weird2');
sql(q{INSERT INTO "we""ird's".stockx_product (sku) VALUES ('WQ-0003'), ('WQ-0004')}, 'weird2');
($rc, $run, $err) = $node->psql('weird2', q{SELECT "we""ird's".stockx_enrich_start()});
like($run, qr/^\d+$/, q{(b2) in schema "we""ird's", start returns a run id}) or diag($err);
$run = 0 unless $run =~ /^\d+$/;
is($node->safe_psql('weird2', qq{SELECT "we""ird's".stockx_enrich_wait($run, 60000)}), 'done',
	'(b2) the run ends done');
is(sql(q{SELECT count(*) FROM "we""ird's".stockx_product WHERE status = 'enriched'}, 'weird2'),
	2, '(b2) both rows enriched');

$node->stop;
done_testing();
