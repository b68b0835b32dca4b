# Inputs, a parallel restore, the upgrade's backlog (issue 15, items 9-14).
#
#  (9)  refresh_every has a floor of 5 minutes and priority bounds of
#       -1000 to 1000; a refresh claim reads the head of an index, not
#       every enriched row (20,000 rows due, a run of 10: the claim reads
#       a few dozen rows where 1.2 sorted all 20,000);
#  (10) stockx_payout() refuses NaN and infinity (22023);
#  (11) stockx_enrich_report() counts 401, 403 and 3xx as neither success
#       nor 429: they do not end a run of 429s;
#  (12) a GTIN of zeros only is invalid, and the workers' match refuses it;
#  (13) pg_restore -j 4 of a custom-format dump of an enriched database
#       restores every row of every table (1.2: foreign keys between the
#       extension's tables failed the parallel COPYs);
#  (14) after an update from 1.1, stockx_enrich_budget shows the refresh
#       backlog the new refresh_after default makes, and how long it takes.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('inputs', requests_per_second => 50);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub err { my ($rc, $out, $e) = $node->psql('postgres', "\\set VERBOSITY verbose\n$_[0]"); return $e; }

# ---------------------------------------------------------------- (9)
my @skus = map { sprintf('IN-%04d', $_) } 1 .. 30;
enqueue_skus($node, @skus);
is(wait_run($node, sql('SELECT stockx_enrich_start(2)'), 60), 'done', '30 products enriched');
like(err(q{UPDATE stockx_product SET refresh_every = '1 microsecond' WHERE sku = 'IN-0001'}),
	qr/23514: new row for relation "stockx_product" violates check constraint "stockx_product_refresh_every_check"/,
	'refresh_every under 5 minutes is refused (23514)');
is(err(q{UPDATE stockx_product SET refresh_every = '5 minutes' WHERE sku = 'IN-0001'}), '', '5 minutes is allowed');
like(err(q{UPDATE stockx_product SET priority = 5000 WHERE sku = 'IN-0001'}),
	qr/23514: .* violates check constraint "stockx_product_priority_check"/, 'priority 5000 is refused (23514)');
sql(q{UPDATE stockx_product SET refresh_every = NULL WHERE sku = 'IN-0001'});

sql(q{INSERT INTO stockx_product (sku, status, stockx_product_id, style_id, market_updated_at, enriched_at)
	SELECT 'IDX-' || i, 'enriched', p.stockx_product_id, p.style_id,
		   now() - interval '2 days' - make_interval(secs => i), now() - interval '3 days'
	  FROM generate_series(1, 20000) i, stockx_product p WHERE p.sku = 'IN-0001';
	ANALYZE stockx_product;
	SELECT pg_stat_reset_single_table_counters('stockx_product'::regclass)});
my $run = sql('SELECT stockx_enrich_start(1, 10)');
is(wait_run($node, $run, 60), 'max_products', 'a refresh run of 10 products');
my $read = sql(q{SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
	FROM pg_stat_user_tables WHERE relid = 'stockx_product'::regclass});
cmp_ok($read, '<', 2000, "with 20,000 rows due the run read $read rows of stockx_product, not all of them");
is(sql(q{SELECT count(*) FROM stockx_product WHERE sku LIKE 'IDX-%' AND market_updated_at > now() - interval '1 hour'}),
	10, 'and refreshed the 10 longest overdue');
is(sql(q{SELECT min(substr(sku, 5)::int) FROM stockx_product WHERE sku LIKE 'IDX-%' AND market_updated_at > now() - interval '1 hour'}),
	19991, 'the most overdue ones, in order');
sql(q{DELETE FROM stockx_product WHERE sku LIKE 'IDX-%'});

# ---------------------------------------------------------------- (10)
like(err(q{SELECT stockx_payout('NaN')}), qr/22023: sale amount must be a finite number: NaN/, 'payout of NaN: 22023');
like(err(q{SELECT stockx_payout('Infinity')}), qr/22023: sale amount must be a finite number: Infinity/,
	'payout of Infinity: 22023');
like(err(q{SELECT stockx_payout('-Infinity')}), qr/22023: sale amount must not be negative/, 'and of -Infinity');

# ---------------------------------------------------------------- (12)
is(sql(q{SELECT stockx_gtin_normalize('00000000') IS NULL AND stockx_gtin_normalize('0000000000000') IS NULL}), 't',
	'a GTIN of zeros only is not a GTIN');
like(err(q{SELECT stockx_enrich_enqueue_gtins(ARRAY['00000000000000'])}), qr/22023: invalid GTIN '00000000000000'/,
	'enqueueing it is refused (22023)');
like(err(q{SELECT * FROM stockx_lookup_gtin('000000000000')}), qr/22023: invalid GTIN '000000000000'/,
	'looking it up too');

# ---------------------------------------------------------------- (13)
# with the shop's price alerts, which name SKUs of stockx_product
sql(q{INSERT INTO stockx_price_alert (sku, condition, amount)
	SELECT sku, 'ask_at_or_below', 100 FROM stockx_product WHERE sku IN ('IN-0002', 'IN-0003')});
is(sql('SELECT count(*) FROM stockx_price_alert'), 2, 'two price alerts');
my @tables = split /\n/, sql(q{SELECT c.relname FROM pg_class c
	WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'stockx%' ORDER BY 1});
my $census = join(" || ' ' || ", map { "(SELECT count(*) FROM $_)" } @tables);
my $dump = $node->basedir . '/parallel.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump -Fc');
sql('CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '-j', '4', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore -j 4 --exit-on-error succeeds');
is($node->safe_psql('restored', "SELECT $census"), sql("SELECT $census"),
	'every table has every row: ' . join(', ', @tables));
# the alerts loaded before the products they name (a parallel restore may)
my ($list, $lerr) = ('', '');
IPC::Run::run([ 'pg_restore', '-l', $dump ], '>', \$list, '2>', \$lerr) or die "pg_restore -l: $lerr";
my @entries = split /\n/, $list;
my ($alert_data) = grep { /TABLE DATA \S+ stockx_price_alert / } @entries;
ok(defined $alert_data, 'the dump holds the data of stockx_price_alert');
my @reordered = map { /TABLE DATA \S+ stockx_product / ? ($alert_data, $_) : $_ }
  grep { $_ ne $alert_data } @entries;
is(scalar(@reordered), scalar(@entries), 'the list puts them right before those of stockx_product');
my $list_file = $node->basedir . '/alerts_first.list';
PostgreSQL::Test::Utils::append_to_file($list_file, join("\n", @reordered) . "\n");
sql('CREATE DATABASE alerts_first');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-L', $list_file, '-d', $node->connstr('alerts_first'), $dump ],
	'a restore that loads the alerts before the products succeeds');
is($node->safe_psql('alerts_first', "SELECT $census"), sql("SELECT $census"), 'with every row');
is($node->safe_psql('restored', q{SELECT count(*) FROM stockx_variant v
	WHERE NOT EXISTS (SELECT 1 FROM stockx_product p WHERE p.sku = v.sku)}), 0, 'no variant without its product');
# what the foreign keys did, triggers do
sql(q{DELETE FROM stockx_product WHERE sku = 'IN-0002'});
is(sql(q{SELECT (SELECT count(*) FROM stockx_variant WHERE sku = 'IN-0002') + (SELECT count(*) FROM stockx_gtin
	WHERE sku = 'IN-0002') + (SELECT count(*) FROM stockx_market m WHERE NOT EXISTS
	(SELECT 1 FROM stockx_variant v WHERE v.variant_id = m.variant_id))}), 0,
	'deleting a product deletes its variants, their market rows and barcodes');
sql(q{UPDATE stockx_product SET sku = 'IN-0003-R' WHERE sku = 'IN-0003'});
is(sql(q{SELECT (SELECT count(*) FROM stockx_variant WHERE sku = 'IN-0003') || ' '
	|| ((SELECT count(*) FROM stockx_variant WHERE sku = 'IN-0003-R') > 0)}), '0 true',
	'a renamed SKU follows into its variants');
is(sql(q{SELECT string_agg(sku, ' ' ORDER BY sku) FROM stockx_price_alert}), 'IN-0003-R',
	'and its price alerts; the deleted product took its alert along');
sql(q{TRUNCATE stockx_product});
is(sql(q{SELECT (SELECT count(*) FROM stockx_variant) + (SELECT count(*) FROM stockx_market)
	+ (SELECT count(*) FROM stockx_gtin)}), 0, 'emptying stockx_product empties the tables below it');

# ---------------------------------------------------------------- (14)
sql('CREATE DATABASE from11');
$node->safe_psql('from11', q{CREATE EXTENSION stockx_enrich VERSION '1.1';
	INSERT INTO stockx_product (sku, status, market_updated_at)
	SELECT 'OLD-' || i, 'enriched', now() - interval '2 days' FROM generate_series(1, 300) i;
	ALTER EXTENSION stockx_enrich UPDATE});
is($node->safe_psql('from11', q{SELECT refreshes || ' ' || extract(epoch FROM backlog_takes)::numeric(8, 1)
	FROM stockx_enrich_budget}), '300 6.0',
	'after an update from 1.1, the budget shows the 300 refreshes now due and that they take 6 s at 50/s');

# ---------------------------------------------------------------- (11)
sql(q{SELECT stockx_enrich_report(429, '0'); SELECT stockx_enrich_report(429, '0')});
is(sql('SELECT consecutive_429 FROM stockx_enrich_limiter'), 2, 'two 429s in a row');
for my $status (401, 403, 302, 500, 0)
{
	sql("SELECT stockx_enrich_report($status)");
	is(sql('SELECT consecutive_429 FROM stockx_enrich_limiter'), 2, "an answer $status does not end the run of 429s");
}
sql('SELECT stockx_enrich_report(404)');
is(sql('SELECT consecutive_429 FROM stockx_enrich_limiter'), 0, 'an answer of the API (404) does');

$node->stop;
done_testing();
