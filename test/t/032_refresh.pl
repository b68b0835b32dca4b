# Refresh of stale market data (stockx_enrich.refresh_after).
#
# Enrich 12 products, then with refresh_after = 1s and new prices at the
# stand-in (market_epoch 1) a run sends exactly one market-data request per
# product and stores the new amounts; a product that gained a variant costs
# one more request (variants) and gets the new variant row; with
# refresh_after off nothing is due and a run sends nothing.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StockxTest;

# 50 requests/s: a refresh run of 12 requests takes well under refresh_after
# (1 s), so no row can become due twice within one run.
my $node = stockx_node('refresh', requests_per_second => 50);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Current state of products and variants, keyed by SKU / variant id.
sub snapshot
{
	my $p = json_decode_utf8(sql(q{
		SELECT json_object_agg(sku, json_build_object('status', status,
			'lowest_ask', lowest_ask::text, 'highest_bid', highest_bid::text,
			'market_updated_at', extract(epoch FROM market_updated_at),
			'enriched_at', extract(epoch FROM enriched_at), 'title', title,
			'product_id', stockx_product_id, 'lease_pid', lease_pid))
		  FROM stockx_product}));
	my $v = json_decode_utf8(sql(q{
		SELECT coalesce(json_object_agg(variant_id, json_build_object('sku', sku,
			'lowest_ask', lowest_ask::text, 'highest_bid', highest_bid::text,
			'sell_faster', sell_faster::text, 'earn_more', earn_more::text,
			'flex_lowest_ask', flex_lowest_ask::text, 'currency_code', currency_code,
			'market_updated_at', extract(epoch FROM market_updated_at))), '{}')
		  FROM stockx_variant}));
	return ($p, $v);
}

# Compare every product and variant with the stand-in's current answers;
# returns a list of differences.
sub market_mismatches
{
	my ($skus, $p, $v) = @_;
	my @bad;
	for my $sku (@$skus)
	{
		my $e = expect_product($sku);
		my $lo = extreme_amount($e->{market}, 'lowestAskAmount', sub { $_[0] < $_[1] });
		my $hi = extreme_amount($e->{market}, 'highestBidAmount', sub { $_[0] > $_[1] });
		push @bad, "$sku lowest_ask $p->{$sku}{lowest_ask} vs $lo"
		  unless num_eq($p->{$sku}{lowest_ask}, $lo);
		push @bad, "$sku highest_bid" unless num_eq($p->{$sku}{highest_bid}, $hi);
		my @mine = grep { $v->{$_}{sku} eq $sku } keys %$v;
		push @bad, "$sku has " . scalar(@mine) . ' variants, stand-in ' . scalar(@{ $e->{variants} })
		  unless @mine == @{ $e->{variants} };
		for my $m (@{ $e->{market} })
		{
			my $got = $v->{ $m->{variantId} };
			if (!$got) { push @bad, "$sku variant $m->{variantId} missing"; next; }
			for my $pair ([ lowest_ask => 'lowestAskAmount' ],
				[ highest_bid => 'highestBidAmount' ], [ sell_faster => 'sellFasterAmount' ],
				[ earn_more => 'earnMoreAmount' ], [ flex_lowest_ask => 'flexLowestAskAmount' ])
			{
				my ($col, $key) = @$pair;
				push @bad, "$sku variant $m->{variantId} $col"
				  unless num_eq($got->{$col}, $m->{$key});
			}
		}
	}
	return @bad;
}

sub set_refresh_after
{
	my ($value) = @_;
	sql("ALTER SYSTEM SET stockx_enrich.refresh_after = '$value'");
	sql('SELECT pg_reload_conf()');
	# new sessions (and workers) fork from the postmaster: wait until it has the value
	my $want = $value eq '0' ? '0' : $value;
	$node->poll_query_until('postgres', 'SHOW stockx_enrich.refresh_after', $want)
	  or die "refresh_after did not become $value";
}

# ---------------------------------------------------------------- enrich 12
my @skus = map { sprintf('RF%04d-%03d', 7000 + $_, $_) } 1 .. 12;
my $n = scalar @skus;
my $array = join(',', map { "'$_'" } @skus);
is(sql("SELECT stockx_enrich_enqueue(ARRAY[$array])"), $n, "$n SKUs queued");
my $run1 = sql('SELECT stockx_enrich_start(2)');
is(wait_run($node, $run1, 60), 'done', 'first run enriches them');
is(sql(q{SELECT count(*) FROM stockx_product WHERE status = 'enriched'}), $n, "$n products enriched");
is(scalar @{ api_requests() }, 3 * $n, '3 requests per new product');
my ($p0, $v0) = snapshot();
is_deeply([ market_mismatches(\@skus, $p0, $v0) ], [], 'market data of epoch 0 stored');

my %sku_of_product = map { $p0->{$_}{product_id} => $_ } @skus;

# ---------------------------------------------------------------- refresh with new prices
set_refresh_after('1s');
admin_reset();
admin_config({ market_epoch => 1 });
usleep(1_200_000);
my $t_refresh = time();
my $run2 = sql('SELECT stockx_enrich_start(1)');
is(wait_run($node, $run2, 60), 'done', 'refresh run ends done');
my $reqs = api_requests();
is(scalar @$reqs, $n, "the refresh sends exactly $n requests");
is(scalar(grep { $_->{endpoint} eq 'market' } @$reqs), $n, 'all of them market-data requests');
my %asked;
for my $r (@$reqs)
{
	my ($pid) = $r->{path} =~ m{/products/([^/]+)/market-data};
	$asked{ $sku_of_product{ $pid // '' } // 'unknown' }++;
}
is_deeply(\%asked, { map { $_ => 1 } @skus }, 'one market-data request per product');
is(scalar(grep { $_->{status} != 200 } @$reqs), 0, 'all answered 200');

my ($p1, $v1) = snapshot();
is_deeply([ market_mismatches(\@skus, $p1, $v1) ], [],
	'every product and variant now holds the stand-in\'s new market data');
my @changed = grep { defined $v0->{$_}{lowest_ask} && $v1->{$_}{lowest_ask} != $v0->{$_}{lowest_ask} } keys %$v0;
my @priced = grep { defined $v0->{$_}{lowest_ask} } keys %$v0;
is(scalar @changed, scalar @priced, 'every variant\'s lowest_ask changed (' . scalar(@priced) . ' variants)');
my @stale = grep { !($p1->{$_}{market_updated_at} > $p0->{$_}{market_updated_at}) } @skus;
is_deeply(\@stale, [], 'market_updated_at advanced on every product');
my @vstale = grep { !($v1->{$_}{market_updated_at} > $v0->{$_}{market_updated_at}) } keys %$v0;
is_deeply(\@vstale, [], 'and on every variant');
is(scalar(grep { $p1->{$_}{status} ne 'enriched' || defined $p1->{$_}{lease_pid} } @skus), 0,
	'every product stays enriched, with no lease');
is(scalar(grep { $p1->{$_}{enriched_at} != $p0->{$_}{enriched_at} || $p1->{$_}{title} ne $p0->{$_}{title} } @skus),
	0, 'enriched_at and product fields are untouched by a refresh');
is(sql("SELECT concat_ws('|', processed, requests, failed, stop_reason) FROM stockx_run WHERE run_id = $run2"),
	"$n|$n|0|done", 'stockx_run counts the refresh');

# ---------------------------------------------------------------- a new variant
my $grow = $skus[4];
my $grow_pid = $p0->{$grow}{product_id};
my $before_variants = sql("SELECT count(*) FROM stockx_variant WHERE sku = '$grow'");
admin_reset();
admin_config({ market_epoch => 1, extra_variant_skus => [$grow] });
usleep(1_200_000);    # everything refreshed by the last run is due again
my $run3 = sql('SELECT stockx_enrich_start(1)');
is(wait_run($node, $run3, 60), 'done', 'refresh run with a new variant ends done');
$reqs = api_requests();
my @grow_reqs = map { $_->{endpoint} } grep { $_->{path} =~ m{/products/\Q$grow_pid\E/} } @$reqs;
is_deeply([ sort @grow_reqs ], [ 'market', 'variants' ],
	"refreshing $grow, which gained a variant, costs 2 requests: market + variants");
is(scalar @$reqs, $n + 1, ($n - 1) . ' other products cost 1 request each (' . ($n + 1) . ' in all)');
is(scalar(grep { $_->{endpoint} eq 'variants' } @$reqs), 1, 'no other product asks for variants');
is(sql("SELECT count(*) FROM stockx_variant WHERE sku = '$grow'"), $before_variants + 1,
	'the new variant row appears');
my $e = expect_product($grow);
my %old = map { $_ => 1 } grep { $v1->{$_}{sku} eq $grow } keys %$v1;
my ($new_variant) = grep { !$old{ $_->{variantId} } } @{ $e->{variants} };
ok($new_variant, 'the stand-in lists one variant we did not have');
if ($new_variant)
{
	is(sql("SELECT variant_value FROM stockx_variant WHERE variant_id = '$new_variant->{variantId}'"),
		$new_variant->{variantValue}, 'stored with its size');
}
my ($p2, $v2) = snapshot();
is_deeply([ market_mismatches(\@skus, $p2, $v2) ], [],
	'every product and variant (the new one too) holds the stand-in\'s market data');

# ---------------------------------------------------------------- refresh off
set_refresh_after('0');
admin_reset();
usleep(1_200_000);
my $runs_before = sql('SELECT count(*) FROM stockx_run');
is(sql('SELECT stockx_enrich_start(1) IS NULL'), 't',
	'with refresh_after 0 no enriched row is due: start returns NULL');
is(scalar @{ admin_log() }, 0, 'and sends nothing');
is(sql('SELECT count(*) FROM stockx_run'), $runs_before, 'and adds no run row');

$node->stop;
done_testing();
