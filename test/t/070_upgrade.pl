# Upgrades: a database on 1.0, with data in it, updated with ALTER EXTENSION
# ... UPDATE ends up with exactly the schema of a fresh install of the
# current version (pg_dump --schema-only of both, compared), keeps its
# rows, and runs.  A fresh install runs the full script of the current
# version (sql/stockx_enrich--<version>.sql, written by
# tools/full_script.sh), the update goes through every update script.
# Every later schema change adds an update script and this test keeps
# passing.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

# the full script is the update chain as the tool writes it
my $tool = "$ENV{TESTDIR}/../tools/full_script.sh";
my ($tool_out, $tool_err);
ok(IPC::Run::run([ 'bash', $tool, '--check' ], '>', \$tool_out, '2>', \$tool_err),
	'sql/stockx_enrich--<current>.sql is what tools/full_script.sh makes of the update chain')
  or diag $tool_err;

my $node = stockx_node('upgrade');
my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'stockx_enrich'");
isnt($current, '1.0', "the current version ($current) is newer than 1.0");
my $sharedir = $node->config_data('--sharedir');
ok(-f "$sharedir/extension/stockx_enrich--$current.sql",
	"the full script of $current is installed: CREATE EXTENSION runs one file");

$node->safe_psql('postgres', 'CREATE DATABASE old_install');
$node->safe_psql('postgres', 'CREATE DATABASE new_install');
$node->safe_psql('old_install', "CREATE EXTENSION stockx_enrich VERSION '1.0'");
is($node->safe_psql('old_install', "SELECT extversion FROM pg_extension WHERE extname = 'stockx_enrich'"),
	'1.0', 'version 1.0 installs');

# fill it the way 1.0 could
$node->safe_psql('old_install', q{
	SELECT stockx_enrich_enqueue(ARRAY['UP-0001', 'UP-0002', 'UP-0003']);
	UPDATE stockx_product SET status = 'failed', attempts = 5, last_error = 'before the upgrade'
	 WHERE sku = 'UP-0003';
	INSERT INTO stockx_run (workers, processed, enriched, stop_reason, finished_at)
	VALUES (1, 2, 2, 'done', now());
	INSERT INTO stockx_quota VALUES (current_date, 42);
});

# the library speaks its own version's schema: it refuses an older one clearly
my ($rc, $out, $err) = $node->psql('old_install', '\set VERBOSITY verbose
SELECT stockx_enrich_start()');
like($err, qr/55000: extension "stockx_enrich" is installed at version 1\.0 in this database, but the library is version \Q$current\E/,
	'a start in a database still on 1.0 is refused with SQLSTATE 55000');
like($err, qr/HINT:  Run ALTER EXTENSION stockx_enrich UPDATE in this database/, 'with a hint');

$node->safe_psql('old_install', 'ALTER EXTENSION stockx_enrich UPDATE');
is($node->safe_psql('old_install', "SELECT extversion FROM pg_extension WHERE extname = 'stockx_enrich'"),
	$current, "ALTER EXTENSION ... UPDATE brings it to $current");
$node->safe_psql('new_install', 'CREATE EXTENSION stockx_enrich');

# The definitions of the extension's member objects: pg_dump leaves them
# out of a normal dump (CREATE EXTENSION recreates them), --binary-upgrade
# writes them; lines that carry OIDs or a per-dump key are dropped.
sub schema_of
{
	my ($db) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'pg_dump', '--schema-only', '--binary-upgrade', '--no-owner',
			'-d', $node->connstr($db) ],
		'>', \$stdout, '2>', \$stderr)
	  or die "pg_dump $db: $stderr";
	my $dump = join("\n",
		grep { !/^--/ && !/^\\(un)?restrict / && !/binary_upgrade_/ && !/^$/ }
		  split /\n/, $stdout);
	# transaction ids and OIDs of the relations differ by nature
	$dump =~ s/relfrozenxid = '\d+', relminmxid = '\d+'/relfrozenxid = X, relminmxid = X/g;
	$dump =~ s/oid = '\d+'/oid = X/g;
	# the state of the run-id sequence is data, not schema
	$dump =~ s/^SELECT pg_catalog.setval\(.*$//mg;
	return $dump;
}
my $old = schema_of('old_install');
my $new = schema_of('new_install');
like($new, qr/CREATE TABLE public\.stockx_product/, 'the dump has the extension\'s objects');
if (!is($old, $new, 'updated and fresh installs have identical schemas'))
{
	my @o = split /\n/, $old;
	my @n = split /\n/, $new;
	for my $i (0 .. ($#o > $#n ? $#o : $#n))
	{
		next if ($o[$i] // '') eq ($n[$i] // '');
		diag "first difference at line $i:\n  updated: " . ($o[$i] // '') . "\n  fresh:   " . ($n[$i] // '');
		last;
	}
}

is($node->safe_psql('old_install',
		"SELECT string_agg(sku || ':' || status || ':' || attempts, ',' ORDER BY sku) FROM stockx_product"),
	'UP-0001:pending:0,UP-0002:pending:0,UP-0003:failed:5', 'the queue is kept');
is($node->safe_psql('old_install',
		"SELECT count(*) || '|' || max(stop_reason) FROM stockx_run"), '1|done', 'the runs are kept');
is($node->safe_psql('old_install', 'SELECT requests FROM stockx_quota'), 42, 'the quota is kept');

# and the updated database works: a run over its queue
my $run = $node->safe_psql('old_install', 'SELECT stockx_enrich_start()');
is($node->safe_psql('old_install', "SELECT stockx_enrich_wait($run, 60000)"), 'done',
	'a run in the updated database ends done');
is($node->safe_psql('old_install',
		"SELECT count(*) FROM stockx_product WHERE status = 'enriched'"), 2,
	'and enriches the two pending rows');
is($node->safe_psql('old_install',
		q{SELECT count(requests_in_flight) || '|' || count(pacing_margin_ms)
		    FROM stockx_enrich_status FULL JOIN stockx_enrich_limiter ON true}),
	'0|1', 'the views have their 1.1 columns');

# 1.1 to 1.2: the market data 1.1 stored becomes the first row of the
# history and the current market data in its currency
$node->safe_psql('postgres', 'CREATE DATABASE v11');
$node->safe_psql('v11', q{
	CREATE EXTENSION stockx_enrich VERSION '1.1';
	INSERT INTO stockx_product (sku, status) VALUES ('UP-0011', 'enriched');
	INSERT INTO stockx_variant (variant_id, sku, variant_value, lowest_ask, highest_bid,
		currency_code, market_updated_at)
	VALUES ('00000000-0000-4000-8000-0000000000aa', 'UP-0011', '9', 210, 180, 'EUR',
		'2026-03-04 05:06:07+00');
	ALTER EXTENSION stockx_enrich UPDATE TO '1.2';
});
is($node->safe_psql('v11', q{SELECT concat_ws(' ', currency_code, lowest_ask, highest_bid,
		market_updated_at AT TIME ZONE 'UTC') FROM stockx_market}),
	'EUR 210 180 2026-03-04 05:06:07', 'stockx_market holds what 1.1 stored');
is($node->safe_psql('v11', q{SELECT concat_ws(' ', sku, currency_code, lowest_ask, highest_bid,
		observed_at AT TIME ZONE 'UTC') FROM stockx_price_history}),
	'UP-0011 EUR 210 180 2026-03-04 05:06:07', 'and is the first row of the price history');

# The reference (doc/stockx_enrich.md, installed beside the README) has an
# entry for every function, view, table and sequence of a fresh install: a
# "### name" heading, functions as "### name(".
{
	my $doc_file = "$ENV{TESTDIR}/../doc/stockx_enrich.md";
	open my $fh, '<', $doc_file or die "$doc_file: $!";
	my $doc = do { local $/; <$fh> };
	close $fh;
	my @objects = split /\n/, $node->safe_psql('new_install', q{
		SELECT kind || ' ' || name FROM (
			SELECT 'function' AS kind, p.proname::text AS name
			  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
			 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
			   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stockx_enrich')
			UNION
			SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'S' THEN 'sequence' ELSE 'table' END,
			       c.relname::text
			  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
			 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
			   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'stockx_enrich')
			   AND c.relkind IN ('r', 'p', 'v', 'S') AND NOT c.relispartition) o
		ORDER BY 1});
	cmp_ok(scalar(@objects), '>', 40, 'the fresh install has its functions, views, tables and sequences');
	my @missing = grep {
		my ($kind, $name) = split / /;
		$kind eq 'function' ? $doc !~ /^### \Q$name\E\(/m
		  : $kind eq 'sequence' ? $doc !~ /`\Q$name\E`/
		  : $doc !~ /^### \Q$name\E\s*$/m
	} @objects;
	is_deeply(\@missing, [], 'doc/stockx_enrich.md has an entry for each of them');
}

$node->stop;
done_testing();
