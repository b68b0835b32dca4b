# Price history, several currencies, the trend view, history retention.
#
# With currency_code 'USD, EUR' a new product costs 4 requests (search,
# variants, market data twice) and a refresh 2; stockx_market holds both
# currencies as the stand-in answers them; the first observation of every
# variant is a history row in each currency.  A refresh that changes
# nothing adds no history row; one that moves one size adds exactly one per
# currency (one with a single currency).  The trend view's figures are
# checked against hand-computed values, and a run drops the partitions that
# history_retention has left behind.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use StockxTest;

my $node = stockx_node('history', requests_per_second => 50,
	currency_code => "'USD, EUR'");
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub run_to_end
{
	my $id = sql('SELECT stockx_enrich_start()');
	isnt($id, '', 'a run started');
	is(wait_run($node, $id, 120), 'done', "run $id ended done");
	return sql("SELECT requests FROM stockx_run WHERE run_id = $id");
}

sub history_rows { return sql('SELECT count(*) FROM stockx_price_history'); }

my @skus = qw(DD1391-100 CU9225-001 555088-134 HIST-4);
enqueue_skus($node, @skus);

# --- first enrichment: 4 requests per product, both currencies stored
is(run_to_end(), 4 * @skus, 'a new product costs 4 requests with two currencies');
my $variants = sql('SELECT count(*) FROM stockx_variant');
cmp_ok($variants, '>', 0, "$variants variants stored");
is(sql("SELECT count(*) FROM stockx_market WHERE currency_code = 'USD'"), $variants,
	'stockx_market has every variant in USD');
is(sql("SELECT count(*) FROM stockx_market WHERE currency_code = 'EUR'"), $variants,
	'stockx_market has every variant in EUR');
is(history_rows(), 2 * $variants, 'the first observation is one history row per variant and currency');

my @bad;
for my $sku (@skus)
{
	for my $cur (qw(USD EUR))
	{
		my $e = expect_product($sku, $cur);
		for my $m (@{ $e->{market} })
		{
			my $got = sql(qq{SELECT coalesce(m.lowest_ask::text, 'null') || ' ' || coalesce(m.highest_bid::text, 'null')
				FROM stockx_market m WHERE m.variant_id = '$m->{variantId}' AND m.currency_code = '$cur'});
			my ($ask, $bid) = split / /, $got;
			push @bad, "$sku $cur $m->{variantId} ask $ask vs " . ($m->{lowestAskAmount} // 'null')
			  unless num_eq($ask eq 'null' ? undef : $ask, $m->{lowestAskAmount});
			push @bad, "$sku $cur $m->{variantId} bid $bid"
			  unless num_eq($bid eq 'null' ? undef : $bid, $m->{highestBidAmount});
		}
	}
}
is_deeply(\@bad, [], 'stockx_market matches the stand-in in both currencies');
is(sql(q{SELECT count(*) FROM stockx_variant v JOIN stockx_market m USING (variant_id)
	WHERE m.currency_code = 'USD' AND v.currency_code = 'USD'
	  AND v.lowest_ask IS NOT DISTINCT FROM m.lowest_ask}), $variants,
	'stockx_variant carries the first currency');

# every enriched row due for a refresh (refresh_after is one day)
sub make_due
{
	sql(q{UPDATE stockx_product SET market_updated_at = market_updated_at - interval '2 days'
		   WHERE status = 'enriched'});
}

# --- a refresh that changes nothing: 2 requests per product, no history row
make_due();
my $before = history_rows();
my $updated = sql('SELECT max(market_updated_at) FROM stockx_market');
is(run_to_end(), 2 * @skus, 'a refresh costs one request per currency');
is(history_rows(), $before, 'a refresh that changes nothing adds no history row');
is(sql("SELECT count(*) FROM stockx_market WHERE market_updated_at > '$updated'"), 2 * $variants,
	'the refresh did update stockx_market');

# --- one size of one SKU moves: exactly one row per currency, for that size
admin_config({ price_moves => { "$skus[0]#2" => 15 } });
my $moved = expect_product($skus[0], 'USD')->{market}[2];
make_due();
$before = history_rows();
my $mark = sql('SELECT now()');
is(run_to_end(), 2 * @skus, 'the refresh costs one request per currency again');
is(history_rows(), $before + 2, 'one size moved: one history row per currency');
is(sql(qq{SELECT string_agg(DISTINCT variant_id::text, ',') FROM stockx_price_history
	WHERE observed_at > '$mark'}), lc $moved->{variantId}, 'the new rows are the moved size\'s');
ok(num_eq(sql(qq{SELECT lowest_ask FROM stockx_price_history WHERE variant_id = '$moved->{variantId}'
	AND currency_code = 'USD' ORDER BY observed_at DESC LIMIT 1}), $moved->{lowestAskAmount}),
	"the new USD row has the new lowest ask $moved->{lowestAskAmount}");

# --- a single currency: exactly one row, one request per refresh
$node->append_conf('postgresql.conf', "stockx_enrich.currency_code = 'USD'\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.currency_code') eq 'USD' });
admin_config({ price_moves => { "$skus[0]#2" => 15, "$skus[1]#0" => -7 } });
make_due();
$before = history_rows();
is(run_to_end(), scalar(@skus), 'one currency: a refresh costs one request');
is(history_rows(), $before + 1, 'one size moved in one currency: exactly one history row');

# --- the trend view, against hand-computed figures
sql(q{SELECT count(*) FROM stockx_price_history_maintain(now() - interval '45 days')});
sql(q{
	INSERT INTO stockx_product (sku, status, market_updated_at) VALUES ('TREND-1', 'enriched', now());
	INSERT INTO stockx_variant (variant_id, sku, variant_value)
		VALUES ('00000000-0000-4000-8000-000000000001', 'TREND-1', '10');
	INSERT INTO stockx_market (variant_id, currency_code, lowest_ask, highest_bid, market_updated_at)
		VALUES ('00000000-0000-4000-8000-000000000001', 'USD', 120, 100, now());
	INSERT INTO stockx_price_history (variant_id, sku, currency_code, observed_at, lowest_ask, highest_bid)
	VALUES ('00000000-0000-4000-8000-000000000001', 'TREND-1', 'USD', now() - interval '40 days', 100, 80),
		   ('00000000-0000-4000-8000-000000000001', 'TREND-1', 'USD', now() - interval '10 days', 90, 85),
		   ('00000000-0000-4000-8000-000000000001', 'TREND-1', 'USD', now() - interval '3 days', 130, 95),
		   ('00000000-0000-4000-8000-000000000001', 'TREND-1', 'USD', now() - interval '2 hours', 120, 100);
});
# in force 1 day ago: 130/95; 7 days ago: 90/85; 30 days ago: 100/80.
# ask: 120-130 = -10 (-7.69 %), 120-90 = 30 (33.33 %), 120-100 = 20 (20.00 %)
# bid: 100-95 = 5 (5.26 %), 100-85 = 15 (17.65 %), 100-80 = 20 (25.00 %)
# 30 days: asks 90, 130, 120 and 100 in force at the start: 90..130;
#          bids 85, 95, 100 and 80: 80..100; spread 120 - 100 = 20.
is(sql(q{SELECT concat_ws(' ', size, currency_code, lowest_ask, highest_bid,
		ask_change_1d, ask_change_1d_pct, bid_change_1d, bid_change_1d_pct,
		ask_change_7d, ask_change_7d_pct, bid_change_7d, bid_change_7d_pct,
		ask_change_30d, ask_change_30d_pct, bid_change_30d, bid_change_30d_pct,
		ask_min_30d, ask_max_30d, bid_min_30d, bid_max_30d, spread)
	FROM stockx_price_trend WHERE sku = 'TREND-1'}),
	'10 USD 120 100 -10 -7.69 5 5.26 30 33.33 15 17.65 20 20.00 20 25.00 90 130 80 100 20',
	'stockx_price_trend: changes, range and spread as computed by hand');

# --- retention: a run drops whole months older than history_retention
my $old = sql(q{SELECT partition_name FROM stockx_price_history_maintain(now() - interval '380 days')
	ORDER BY 1 LIMIT 1});
like($old, qr/^stockx_price_history_\d{6}$/, "an old partition $old was made");
sql(q{INSERT INTO stockx_price_history (variant_id, sku, currency_code, observed_at, lowest_ask)
	VALUES ('00000000-0000-4000-8000-000000000001', 'TREND-1', 'USD', now() - interval '375 days', 1)});
my $recent = 'stockx_price_history_' . sql(q{SELECT to_char(now() AT TIME ZONE 'UTC' - interval '40 days', 'YYYYMM')});
$node->append_conf('postgresql.conf', "stockx_enrich.history_retention = '200d'\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.history_retention') eq '200d' });
enqueue_skus($node, 'HIST-5');
run_to_end();
is(sql("SELECT to_regclass('$old') IS NULL"), 't', "the run dropped $old");
is(sql(q{SELECT count(*) FROM stockx_price_history WHERE observed_at < now() - interval '300 days'}), 0,
	'its rows are gone');
is(sql("SELECT to_regclass('$recent') IS NOT NULL"), 't', "$recent, within the retention, is kept");
my $ahead = 'stockx_price_history_' . sql(q{SELECT to_char(now() AT TIME ZONE 'UTC' + interval '2 months', 'YYYYMM')});
is(sql("SELECT to_regclass('$ahead') IS NOT NULL"), 't', "partitions are made ahead ($ahead)");

# --- a month nobody made a partition for yet: the default partition takes
# it, and maintenance later moves it into a partition of its own
sql(q{INSERT INTO stockx_price_history (variant_id, sku, currency_code, observed_at, lowest_ask)
	VALUES ('00000000-0000-4000-8000-000000000001', 'TREND-1', 'USD', now() + interval '5 months', 2)});
is(sql('SELECT count(*) FROM stockx_price_history_default'), 1,
	'a row of a month without a partition is kept in the default partition');
my $later = 'stockx_price_history_' . sql(q{SELECT to_char(now() AT TIME ZONE 'UTC' + interval '5 months', 'YYYYMM')});
is(sql(qq{SELECT action FROM stockx_price_history_maintain(NULL, 6) WHERE partition_name = '$later'}),
	'created from the default partition', "maintenance makes $later from the default partition");
is(sql("SELECT count(*) FROM $later") . '/' . sql('SELECT count(*) FROM stockx_price_history_default'),
	'1/0', 'and moves the row into it');

# --- a dump restores: partitions made by the workers (not members of the
# extension) with their rows, the default partition's rows, the current
# market data
my $dump = $node->basedir . '/history.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');
sql('CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'),
	'-f', $dump ], 'the dump restores with ON_ERROR_STOP');
my $census = q{SELECT (SELECT count(*) FROM stockx_price_history) || ' ' ||
	(SELECT count(*) FROM stockx_price_history_default) || ' ' ||
	(SELECT count(*) FROM stockx_market) || ' ' ||
	(SELECT count(*) FROM pg_inherits WHERE inhparent = 'stockx_price_history'::regclass)};
is($node->safe_psql('restored', $census), sql($census),
	'with every history row, partition and market row');

# --- the maintenance function refuses nonsense and is not for everybody
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM stockx_price_history_maintain(NULL, 99)');
like($err, qr/months_ahead must be between 0 and 24/, 'months_ahead out of range is refused');
sql('CREATE ROLE plain LOGIN');
($rc, $out, $err) = $node->psql('postgres', 'SET ROLE plain; SELECT * FROM stockx_price_history_maintain()');
like($err, qr/permission denied/, 'a plain role may not run the maintenance with its arguments');
($rc, $out, $err) = $node->psql('postgres', 'SET ROLE plain; SELECT stockx_price_history_upkeep()');
like($err, qr/function stockx_price_history_upkeep\(\) does not exist/,
	'and the upkeep has no SQL entry point: the workers run it as the owner (t/095)');

$node->stop;
done_testing();
