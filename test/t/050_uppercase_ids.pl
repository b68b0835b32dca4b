# Upper-case product and variant ids (stand-in uppercase_ids).
#
# Defect pinned: the landed store writes each variant with $1::uuid and then
# deletes the SKU's variants "WHERE variant_id::text <> ALL (ids as sent)".
# A uuid prints in lower case, so when StockX sends upper-case ids every
# variant just written is deleted again: the product ends 'enriched' with no
# variant rows and no market data, and every refresh repeats it.
#
# Behaviour now expected: ids are compared as uuids (case does not matter).
# A few plain SKUs and a MANY- SKU (60 variants) end 'enriched' with exactly
# the stand-in's variants (variant_id = the stand-in's id, lower-cased as a
# uuid prints), with their market data and the product summary; a refresh of
# stale rows (refresh_after = 1d, market_updated_at two days old) sends one
# market-data request per product, keeps every variant and stores the new
# prices.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('upper_ids', requests_per_second => 50);
admin_reset();
admin_config({ uppercase_ids => JSON::PP::true });

sub sql { return $node->safe_psql('postgres', $_[0]); }

my @skus = ('UP1001-100', 'UP1002-200', 'UP1003-300', 'UP1004-400', 'MANY-UP5');
my %expect = map { $_ => expect_product($_) } @skus;

# the stand-in really sends upper-case ids (and they contain letters)
my @lower_sent = grep {
	my $e = $expect{$_};
	$e->{product}{productId} ne uc $e->{product}{productId}
	  || grep { $_->{variantId} ne uc $_->{variantId} } @{ $e->{variants} }
} @skus;
is_deeply(\@lower_sent, [], 'the stand-in sends every productId and variantId in upper case');
is(scalar @{ $expect{'MANY-UP5'}{variants} }, 60, 'MANY-UP5 has 60 variants at the stand-in');

# Differences between the database and the stand-in's current answers.
sub mismatches
{
	my @bad;
	my $p = json_decode_utf8(sql(q{
		SELECT json_object_agg(sku, json_build_object('status', status,
			'id', stockx_product_id, 'lowest_ask', lowest_ask::text,
			'highest_bid', highest_bid::text, 'market_at', market_updated_at IS NOT NULL))
		  FROM stockx_product}));
	my $v = json_decode_utf8(sql(q{
		SELECT coalesce(json_object_agg(variant_id, json_build_object('sku', sku,
			'lowest_ask', lowest_ask::text, 'highest_bid', highest_bid::text,
			'sell_faster', sell_faster::text, 'earn_more', earn_more::text,
			'flex_lowest_ask', flex_lowest_ask::text,
			'market_at', market_updated_at IS NOT NULL)), '{}')
		  FROM stockx_variant}));
	for my $sku (@skus)
	{
		my $e = expect_product($sku);
		my $r = $p->{$sku};
		push @bad, "$sku status $r->{status}" unless $r->{status} eq 'enriched';
		push @bad, "$sku stockx_product_id " . ($r->{id} // 'NULL')
		  unless ($r->{id} // '') eq lc $e->{product}{productId};
		my @mine = sort grep { $v->{$_}{sku} eq $sku } keys %$v;
		my @want = sort map { lc $_->{variantId} } @{ $e->{variants} };
		push @bad, "$sku has " . scalar(@mine) . ' variant rows, the stand-in ' . scalar(@want)
		  unless @mine == @want;
		push @bad, "$sku variant ids differ from the stand-in's"
		  unless join(',', @mine) eq join(',', @want);
		for my $m (@{ $e->{market} })
		{
			my $got = $v->{ lc $m->{variantId} } or next;
			push @bad, "$sku variant $m->{variantId} has no market time" unless $got->{market_at};
			for my $pair ([ lowest_ask => 'lowestAskAmount' ],
				[ highest_bid => 'highestBidAmount' ], [ sell_faster => 'sellFasterAmount' ],
				[ earn_more => 'earnMoreAmount' ], [ flex_lowest_ask => 'flexLowestAskAmount' ])
			{
				my ($col, $key) = @$pair;
				push @bad, "$sku variant $m->{variantId} $col"
				  unless num_eq($got->{$col}, $m->{$key});
			}
		}
		my $lo = extreme_amount($e->{market}, 'lowestAskAmount', sub { $_[0] < $_[1] });
		my $hi = extreme_amount($e->{market}, 'highestBidAmount', sub { $_[0] > $_[1] });
		push @bad, "$sku lowest_ask " . ($r->{lowest_ask} // 'NULL') . ' vs ' . ($lo // 'NULL')
		  unless num_eq($r->{lowest_ask}, $lo);
		push @bad, "$sku highest_bid " . ($r->{highest_bid} // 'NULL') . ' vs ' . ($hi // 'NULL')
		  unless num_eq($r->{highest_bid}, $hi);
		push @bad, "$sku has no market_updated_at" unless $r->{market_at};
	}
	return @bad;
}

# ---------------------------------------------------------------- first enrichment
enqueue_skus($node, @skus);
my $run1 = sql('SELECT stockx_enrich_start(2)');
is(wait_run($node, $run1, 60), 'done', 'the first run ends done');
my @bad = mismatches();
is_deeply(\@bad, [], 'every SKU enriched with all its variants (ids compared as uuids) and market data')
  or diag(join("\n", @bad[0 .. ($#bad > 15 ? 15 : $#bad)]));
is(sql('SELECT count(*) FROM stockx_variant'), scalar(map { @{ $expect{$_}{variants} } } @skus),
	'stockx_variant holds exactly the stand-in\'s variants');
is(sql("SELECT concat_ws('|', enriched, failed, stop_reason) FROM stockx_run WHERE run_id = $run1"),
	scalar(@skus) . '|0|done', 'stockx_run counts them enriched');

# ---------------------------------------------------------------- refresh of stale rows
sql("ALTER SYSTEM SET stockx_enrich.refresh_after = '1d'");
sql('SELECT pg_reload_conf()');
$node->poll_query_until('postgres', 'SHOW stockx_enrich.refresh_after', '1d')
  or die 'refresh_after did not become 1d';
sql(q{UPDATE stockx_product SET market_updated_at = now() - interval '2 days'});
admin_reset();
admin_config({ uppercase_ids => JSON::PP::true, market_epoch => 1 });

my $run2 = sql('SELECT stockx_enrich_start(1)');
is(wait_run($node, $run2, 60), 'done', 'the refresh run ends done');
my $reqs = api_requests();
my %pid_of = map { lc $expect{$_}{product}{productId} => $_ } @skus;
my %asked;
for my $r (@$reqs)
{
	my ($pid) = $r->{path} =~ m{/products/([^/]+)/};
	$asked{ ($pid_of{ lc($pid // '') } // 'other') . ' ' . $r->{endpoint} }++;
}
is_deeply(\%asked, { map { ("$_ market" => 1) } @skus },
	'the refresh sends one market-data request per product and asks for no variants');
@bad = mismatches();
is_deeply(\@bad, [], 'after the refresh every variant is still there, with the new market data')
  or diag(join("\n", @bad[0 .. ($#bad > 15 ? 15 : $#bad)]));

$node->stop;
done_testing();
