# StockX's published contract and the real internet (issue 16).
#
#  (9) The daily limit holds per UTC day and in any 24 hours: a record of
#      send times that reaches back into yesterday (persisted, as before a
#      restart) refuses a start after midnight although today's count is
#      0, and stockx_enrich_limiter and stockx_enrich_budget show both
#      counts and when the next request is allowed;
#  (8) what the limiter learnt from an isolated 429 (the wider margin)
#      survives a restart;
#  (2) market data whose prices come only in standardMarketData,
#      flexMarketData and directMarketData (the stand-in's JPY) is read:
#      the summary columns from the standard figures, flex and direct kept;
#  (3) the 30 currencies of the document's enum are accepted;
#  (4) product-level market data that answers [] for a product with sizes
#      (an unknown product id) makes a refreshed row not_found, not
#      "enriched with no prices";
#  (5) an exact style id on page 2 of the search answer is found, each page
#      one request; a SKU with no match stops after search_max_pages;
#  (6) a variant id that is not a UUID fails its row with a message naming
#      it; the other rows of the run are enriched.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('contract', requests_per_second => 50, daily_request_limit => 20);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub set_conf
{
	my ($name, $value) = @_;
	sql("ALTER SYSTEM SET stockx_enrich.$name = '$value'; SELECT pg_reload_conf()");
	poll_until(10, sub { sql("SELECT setting FROM pg_settings WHERE name = 'stockx_enrich.$name'") eq $value })
	  or die "$name did not become $value";
}

# ---------------------------------------------------------------- (9)
# 20 requests sent yesterday at 23:59 UTC (the last 5-minute bucket of
# yesterday), persisted as a worker would have before a restart; nothing today
my $bucket = sql(q{SELECT floor(extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')
	AT TIME ZONE 'UTC' - interval '1 minute') / 300)::bigint});
sql(qq{INSERT INTO stockx_quota (day, requests, window_latest, window_counts)
	VALUES ((now() AT TIME ZONE 'UTC')::date - 1, 20, $bucket,
			array_fill(0, ARRAY[288]) || 20)});
enqueue_skus($node, 'CT-0001');
my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT stockx_enrich_start()");
like($err, qr/53400: daily StockX request quota is spent \(0 of 20 requests today, 20 in the last 24 hours\)/,
	'after midnight a start is refused: 0 requests today but 20 in the last 24 hours');
my $next = sql(qq{SELECT to_timestamp(($bucket + 289) * 300)});
like($err, qr/The next request is allowed at/, 'the hint says when the next request is allowed');
is(sql(q{SELECT requests_today || ' ' || requests_last_24h || ' ' || next_request_allowed_at
	FROM stockx_enrich_limiter}), "0 20 $next",
	"stockx_enrich_limiter shows both counts and the next allowed time ($next)");
is(sql(q{SELECT quota_left_today || ' ' || quota_left_24h || ' ' || next_request_allowed_at
	FROM stockx_enrich_budget}), "20 0 $next", 'stockx_enrich_budget too');
ok(sql(q{SELECT backlog_done_at >= next_request_allowed_at FROM stockx_enrich_budget}) eq 't',
	'and its backlog starts no earlier');
sql('DELETE FROM stockx_quota');
$node->restart;
set_conf('daily_request_limit', '25000');

# ---------------------------------------------------------------- (8)
admin_config({ fail_next => [ { status => 429, count => 1 } ] });
enqueue_skus($node, 'CT-0002');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'a run with one isolated 429 ends done');
my $margin = sql('SELECT pacing_margin_ms FROM stockx_enrich_limiter');
cmp_ok($margin, '>=', 2 + 0.05 * 20 - 0.01, "the 429 widened the margin by 5% of the interval ($margin ms)");
$node->restart;
enqueue_skus($node, 'CT-0003');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'after a restart a run ends done');
is(sql('SELECT pacing_margin_ms FROM stockx_enrich_limiter'), $margin,
	'and the margin learnt before the restart is in force');
admin_reset();

# ---------------------------------------------------------------- (2) and (3)
set_conf('currency_code', 'USD,JPY');
enqueue_skus($node, 'CT-NEST-1');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'enriched in USD and JPY');
my $jpy = expect_product('CT-NEST-1', 'JPY');
ok(!exists $jpy->{market}[0]{lowestAskAmount} && defined $jpy->{market}[0]{standardMarketData},
	'the stand-in answers JPY with the prices in the nested objects only');
my @bad;
for my $m (@{ $jpy->{market} })
{
	my $row = json_decode_utf8(sql(qq{SELECT row_to_json(m) FROM stockx_market m
		WHERE variant_id = '$m->{variantId}' AND currency_code = 'JPY'}));
	my $s = $m->{standardMarketData};
	push @bad, "$m->{variantId} ask" unless num_eq($row->{lowest_ask}, $s->{lowestAsk});
	push @bad, "$m->{variantId} bid" unless num_eq($row->{highest_bid}, $s->{highestBidAmount});
	push @bad, "$m->{variantId} beat" unless num_eq($row->{beat_us}, $s->{beatUS});
	push @bad, "$m->{variantId} flex"
	  unless num_eq($row->{flex_lowest_ask}, $m->{flexMarketData} ? $m->{flexMarketData}{lowestAsk} : undef);
	push @bad, "$m->{variantId} flex object"
	  unless !$m->{flexMarketData} || num_eq($row->{flex}{highest_bid}, $m->{flexMarketData}{highestBidAmount});
	push @bad, "$m->{variantId} direct object"
	  unless !$m->{directMarketData} || num_eq($row->{direct}{lowest_ask}, $m->{directMarketData}{lowestAsk});
}
is_deeply(\@bad, [], 'JPY market rows: summary from standardMarketData, beat_us, flex and direct kept');
is(sql(q{SELECT count(*) FILTER (WHERE lowest_ask IS NOT NULL) > 0 FROM stockx_market
	WHERE currency_code = 'JPY'}), 't', 'JPY asks are stored (1.2 stored none from such an answer)');
set_conf('currency_code', 'USD,BRL,CLP,KWD,VND,TWD');
is(sql('SHOW stockx_enrich.currency_code'), 'USD,BRL,CLP,KWD,VND,TWD', 'currencies of the 30 of the enum are accepted');
($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET stockx_enrich.currency_code = 'USD,XYZ'");
like($err, qr/StockX does not know the currency "XYZ"/, 'an unknown one is refused');
set_conf('currency_code', 'USD');

# ---------------------------------------------------------------- (4)
enqueue_skus($node, 'CT-GONE-1');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'CT-GONE-1 enriched');
sql(q{UPDATE stockx_product SET stockx_product_id = '00000000-0000-4000-8000-00000000abcd',
	market_updated_at = now() - interval '2 days' WHERE sku = 'CT-GONE-1'});
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'its refresh ends done');
is(sql(q{SELECT status FROM stockx_product WHERE sku = 'CT-GONE-1'}), 'not_found',
	'market data [] for a product with sizes: not_found (a later recheck searches again)');

# ---------------------------------------------------------------- (5)
admin_reset();
admin_config({ search_extra_hits => { 'CT-PAGE-1' => 60, 'NF-CT-PAGES' => 500 } });
enqueue_skus($node, 'CT-PAGE-1', 'NF-CT-PAGES');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'the run ends done');
is(sql(q{SELECT string_agg(sku || ' ' || status, ', ' ORDER BY sku) FROM stockx_product
	WHERE sku IN ('CT-PAGE-1', 'NF-CT-PAGES')}), 'CT-PAGE-1 enriched, NF-CT-PAGES not_found',
	'the exact match on page 2 is found');
my %pages;
for my $r (@{ api_requests() })
{
	next unless $r->{endpoint} eq 'search';
	my ($q) = $r->{query} =~ /query=([^&]+)/;
	$pages{$q}++;
}
is(join(' ', map { "$_:$pages{$_}" } sort keys %pages), 'CT-PAGE-1:2 NF-CT-PAGES:3',
	'two search pages for the one on page 2; three (search_max_pages) for the one that has none');
is(admin_stats()->{api_total}, 2 + 2 + 3, 'each page one request, then variants and market data');

# ---------------------------------------------------------------- (6)
admin_config({ odd_ids => ['CT-ODD-1'] });
enqueue_skus($node, 'CT-ODD-1', 'CT-FINE-1');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'the run ends done');
is(sql(q{SELECT status FROM stockx_product WHERE sku = 'CT-FINE-1'}), 'enriched', 'the other row is enriched');
like(sql(q{SELECT status || ': ' || last_error FROM stockx_product WHERE sku = 'CT-ODD-1'}),
	qr/^failed: variants: malformed answer: field "variantId" is "v-\d+-\d+", not a UUID/,
	'the row whose variant id is not a UUID fails, naming the id');

$node->stop;
done_testing();
