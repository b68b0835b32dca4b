# The price history's upkeep acts by OID and fails loudly (issue 15, items 2
# and 8).
#
#  (a) A writer that adds a row of a month with no partition yet (to the
#      default partition) while the upkeep makes that month's partition:
#      the upkeep waits for it and moves its row (1.2 moved the rows first,
#      then ATTACH found the writer's row and failed with 23514).
#  (b) A partition moved to another schema is still dropped when it is
#      older than history_retention, and a same-named table left in the
#      extension's schema is not (1.2 dropped by name: the upkeep failed,
#      or dropped the unrelated table).
#  (c) A table squatting on the name of next month's partition: the upkeep
#      fails naming it, and stockx_enrich_alerts says rows wait in the
#      default partition (1.2 skipped that month for ever, silently).
#  (d) The workers make partitions as the extension's owner with the
#      function's own settings: a role that starts runs with
#      default_tablespace set to a tablespace of its choice does not get
#      the owner's partitions put there (1.2's upkeep took the caller's).
use strict;
use warnings;

use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use StockxTest;

my $node = stockx_node('upkeep', requests_per_second => 50);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $month = sub { sql(qq{SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '$_[0] months', 'YYYYMM')}) };
my $month_ts = sub { sql(qq{SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '$_[0] months' + interval '3 days') AT TIME ZONE 'UTC'}) };

# ---------------------------------------------------------------- (a)
my $m5 = $month->(5);
# the months up to M+4 exist: the upkeep's first new partition is M+5's
sql('SELECT count(*) FROM stockx_price_history_maintain(NULL, 4)');
my $writer = $node->background_psql('postgres');
$writer->query_safe(q{BEGIN; INSERT INTO stockx_price_history (variant_id, sku, currency_code, observed_at)
	VALUES (gen_random_uuid(), 'RACE', 'USD', '} . $month_ts->(5) . q{')});
my ($out, $upkeep_err) = ('', '');
my $upkeep = IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres'), '-c',
		q{SELECT string_agg(partition_name || '=' || action, ',') FROM stockx_price_history_maintain(NULL, 6)} ],
	'>', \$out, '2>', \$upkeep_err);
ok(poll_until(10, sub { sql(q{SELECT count(*) FROM pg_stat_activity
	WHERE wait_event_type = 'Lock' AND query LIKE '%stockx_price_history_maintain%'}) > 0 }),
	'the upkeep waits for the writer of the default partition');
$writer->query_safe('COMMIT');
$writer->quit;
$upkeep->finish;
is($upkeep_err, '', 'the upkeep succeeds once the writer committed');
like($out, qr/stockx_price_history_$m5=created from the default partition/,
	"it made stockx_price_history_$m5 from the default partition");
is(sql("SELECT count(*) FROM stockx_price_history_$m5 WHERE sku = 'RACE'"), 1, "the writer's row is in it");
is(sql(q{SELECT count(*) FROM stockx_price_history_default WHERE sku = 'RACE'}), 0, 'not in the default partition');

# ---------------------------------------------------------------- (b)
my $old = sql(q{SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '14 months', 'YYYYMM')});
my $old_ts = sql(q{SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '14 months' + interval '3 days') AT TIME ZONE 'UTC'});
sub set_retention
{
	my ($value) = @_;
	sql("ALTER SYSTEM SET stockx_enrich.history_retention = '$value'; SELECT pg_reload_conf()");
	poll_until(10, sub { sql('SHOW stockx_enrich.history_retention') eq $value })
	  or die "history_retention did not become $value";
}
set_retention('0');
sql(qq{SELECT count(*) FROM stockx_price_history_maintain('$old_ts', 0)});
sql(qq{INSERT INTO stockx_price_history (variant_id, sku, currency_code, observed_at)
	VALUES (gen_random_uuid(), 'OLD', 'USD', '$old_ts')});
is(sql("SELECT count(*) FROM stockx_price_history_$old"), 1, "an old month's partition with a row");
set_retention('365d');
sql(qq{CREATE SCHEMA archive;
	ALTER TABLE stockx_price_history_$old SET SCHEMA archive;
	CREATE TABLE public.stockx_price_history_$old (keep text);
	INSERT INTO public.stockx_price_history_$old VALUES ('not a partition')});
my $dropped = sql(q{SELECT string_agg(partition_name, ',') FROM stockx_price_history_maintain()
	WHERE action = 'dropped'});
like($dropped, qr/archive\.stockx_price_history_$old/, 'retention drops the partition moved to another schema');
is(sql(qq{SELECT to_regclass('archive.stockx_price_history_$old') IS NULL}), 't', 'it is gone');
is(sql("SELECT keep FROM public.stockx_price_history_$old"), 'not a partition',
	'the same-named table in the extension\'s schema is left alone');
sql("DROP TABLE public.stockx_price_history_$old");

# ---------------------------------------------------------------- (c)
my $m8 = $month->(8);
sql(qq{CREATE TABLE public.stockx_price_history_$m8 (squatter text)});
my ($rc, $o, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM stockx_price_history_maintain(NULL, 9)");
like($err, qr/42P07: relation (public\.)?stockx_price_history_$m8 is in the way of the price history partition/,
	'a squatter on a partition name makes the upkeep fail, naming it (42P07)');
like($err, qr/HINT:  Rename or drop that relation/, 'with a hint');
sql(q{INSERT INTO stockx_price_history (variant_id, sku, currency_code, observed_at)
	VALUES (gen_random_uuid(), 'NOW', 'USD', now())});
is(sql(q{SELECT count(*) FROM stockx_enrich_alerts WHERE alert = 'history_partitions'}), 0,
	'rows of this month have their partition: no alert');
sql(q{ALTER TABLE stockx_price_history DETACH PARTITION stockx_price_history_} . $month->(0) . q{;
	DROP TABLE stockx_price_history_} . $month->(0));
sql(q{INSERT INTO stockx_price_history (variant_id, sku, currency_code, observed_at)
	VALUES (gen_random_uuid(), 'NOW2', 'USD', now())});
is(sql(q{SELECT detail FROM stockx_enrich_alerts WHERE alert = 'history_partitions'}),
	'1 rows of this month or later wait in stockx_price_history_default',
	'a row of a month without its partition shows in stockx_enrich_alerts');
sql("DROP TABLE public.stockx_price_history_$m8");
sql('SELECT count(*) FROM stockx_price_history_maintain(NULL, 9)');
is(sql(q{SELECT count(*) FROM stockx_enrich_alerts WHERE alert = 'history_partitions'}), 0,
	'the squatter gone, the upkeep makes the months and moves the row out');

# ---------------------------------------------------------------- (d)
my $ts_dir = $node->basedir . '/elsewhere';
make_path($ts_dir);
sql(qq{CREATE TABLESPACE elsewhere LOCATION '$ts_dir';
	CREATE ROLE starter LOGIN;
	GRANT CREATE ON TABLESPACE elsewhere TO starter;
	GRANT EXECUTE ON FUNCTION stockx_enrich_start(int, bigint), stockx_enrich_wait(bigint, int) TO starter;
	GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO starter;
	GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO starter;
	ALTER ROLE starter SET default_tablespace = 'elsewhere'});
# no partition of this month or later: the run's upkeep makes them
for my $p (split /\n/, sql(q{SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'stockx_price_history'::regclass AND c.relname <> 'stockx_price_history_default'}))
{
	sql("DROP TABLE $p");
}
enqueue_skus($node, 'UPKEEP-0001');
($rc, my $run, $err) = $node->psql('postgres', 'SELECT stockx_enrich_start()', extra_params => [ '-U', 'starter' ]);
like($run, qr/^\d+$/, 'a role with default_tablespace set starts a run') or diag($err);
is(wait_run($node, $run, 60), 'done', 'the run ends done');
is(sql(q{SELECT count(*) || ' ' || count(*) FILTER (WHERE c.reltablespace = 0)
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'stockx_price_history'::regclass AND c.relname <> 'stockx_price_history_default'}),
	'3 3', "the run's upkeep made this month and two ahead, in the database's tablespace, not the role's");
is(sql(q{SELECT string_agg(DISTINCT pg_get_userbyid(c.relowner), ',') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'stockx_price_history'::regclass}),
	sql(q{SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'stockx_enrich'}),
	'owned by the extension\'s owner');

$node->stop;
done_testing();
