# End to end: 60+ SKUs of every kind through two workers against the
# stand-in.  Every row gets the stand-in's exact fields, not-found SKUs are
# not_found, a new product costs exactly 3 requests, and no two requests
# come closer than the configured interval.
use strict;
use warnings;
use utf8;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $rate = 20;
my $node = stockx_node('enrich', requests_per_second => $rate);
admin_reset();

my @skus = (
	(map { sprintf('DD%04d-1%02d', 1391 + $_, $_) } 1 .. 30),    # found
	(map { "NF-$_" } 1 .. 8),                                     # fuzzy near-misses only
	(map { "CMP-$_" . 'AB' } 1 .. 6),                             # compound styleIds
	(map { "NUL-$_" } 1 .. 4),                                    # null attributes
	(map { "MANY-$_" } 1 .. 3),                                   # 60 variants
	(map { "NUM-$_" } 1 .. 4),                                    # numbers for amounts
	'A B&C#D+é', 'HQ/4540 X', 'ÆØÅ-42');                          # URL-hostile
my $n = scalar @skus;
cmp_ok($n, '>=', 50, "$n SKUs queued");

my $array = join(',', map { my $s = $_; $s =~ s/'/''/g; "'$s'" } @skus);
is($node->safe_psql('postgres', "SELECT stockx_enrich_enqueue(ARRAY[$array])"),
	$n, 'enqueue reports every SKU as new');

my $t0 = time();
my $run_id = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(2)');
like($run_id, qr/^\d+$/, 'start returns a run id at once');
is($node->safe_psql('postgres', 'SELECT stockx_enrich_start(2)'),
	$run_id, 'a second start while the run is active returns the same run');

is(wait_run($node, $run_id, 300), 'done', 'run ends with stop_reason done');
my $elapsed = time() - $t0;

# --- every row against the stand-in's catalogue
my %expect = map { $_ => expect_product($_) } @skus;
my @found = grep { $expect{$_}{found} } @skus;
my @missing = grep { !$expect{$_}{found} } @skus;
is(scalar @missing, 8, 'the stand-in does not know the 8 NF- SKUs');

my $rows = $node->safe_psql('postgres', q{
	SELECT json_agg(json_build_object(
		'sku', sku, 'status', status, 'attempts', attempts, 'last_error', last_error,
		'lease_pid', lease_pid, 'id', stockx_product_id, 'url_key', url_key,
		'style_id', style_id, 'title', title, 'brand', brand, 'product_type', product_type,
		'gender', gender, 'season', season, 'colorway', colorway, 'color', color,
		'retail_price', retail_price::text, 'release_date', release_date::text,
		'lowest_ask', lowest_ask::text, 'highest_bid', highest_bid::text,
		'currency_code', currency_code, 'has_market_time', market_updated_at IS NOT NULL,
		'product_id_in_json', product->>'productId',
		'variants', (SELECT count(*) FROM stockx_variant v WHERE v.sku = p.sku)))
	  FROM stockx_product p});
my %row = map { $_->{sku} => $_ } @{ json_decode_utf8($rows) };

my $field_errors = 0;
for my $sku (@found)
{
	my $e = $expect{$sku};
	my $p = $e->{product};
	my $a = $p->{productAttributes} // {};
	my $r = $row{$sku};
	my @bad;
	push @bad, "status $r->{status}" unless $r->{status} eq 'enriched';
	push @bad, 'lease kept' if defined $r->{lease_pid};
	for my $pair ([ id => 'productId' ], [ url_key => 'urlKey' ],
		[ style_id => 'styleId' ], [ title => 'title' ], [ brand => 'brand' ],
		[ product_type => 'productType' ])
	{
		my ($col, $key) = @$pair;
		push @bad, $col unless ($r->{$col} // "\0") eq ($p->{$key} // "\0");
	}
	for my $col (qw(gender season colorway color))
	{
		push @bad, $col unless ($r->{$col} // "\0") eq ($a->{$col} // "\0");
	}
	push @bad, 'release_date'
	  unless ($r->{release_date} // "\0") eq ($a->{releaseDate} // "\0");
	push @bad, 'retail_price' unless num_eq($r->{retail_price}, $a->{retailPrice});
	push @bad, 'product json' unless ($r->{product_id_in_json} // '') eq $p->{productId};
	push @bad, "variants $r->{variants}" unless $r->{variants} == @{ $e->{variants} };
	my $lo = extreme_amount($e->{market}, 'lowestAskAmount', sub { $_[0] < $_[1] });
	my $hi = extreme_amount($e->{market}, 'highestBidAmount', sub { $_[0] > $_[1] });
	push @bad, 'lowest_ask' unless num_eq($r->{lowest_ask}, $lo);
	push @bad, 'highest_bid' unless num_eq($r->{highest_bid}, $hi);
	push @bad, 'currency' unless $r->{currency_code} eq 'USD' && $r->{has_market_time};
	if (@bad)
	{
		$field_errors++;
		diag("$sku: " . join(', ', @bad));
	}
}
is($field_errors, 0, scalar(@found) . ' found SKUs enriched with the exact fields of the stand-in');

my @not_found_bad = grep { $row{$_}{status} ne 'not_found' || $row{$_}{variants} != 0 } @missing;
is_deeply(\@not_found_bad, [], 'near-miss SKUs are not_found, with no variants');

# --- variant rows: every market amount as the stand-in sent it
my $vrows = json_decode_utf8($node->safe_psql('postgres', q{
	SELECT json_agg(json_build_object('id', variant_id, 'sku', sku, 'name', variant_name,
		'value', variant_value, 'gtins', gtins, 'size_chart', size_chart,
		'lowest_ask', lowest_ask::text, 'highest_bid', highest_bid::text,
		'sell_faster', sell_faster::text, 'earn_more', earn_more::text,
		'flex_lowest_ask', flex_lowest_ask::text))
	  FROM stockx_variant}));
my %variant = map { $_->{id} => $_ } @$vrows;
my $variant_errors = 0;
my $variant_total = 0;
for my $sku (@found)
{
	my %market = map { $_->{variantId} => $_ } @{ $expect{$sku}{market} };
	for my $v (@{ $expect{$sku}{variants} })
	{
		$variant_total++;
		my $got = $variant{ $v->{variantId} };
		my $m = $market{ $v->{variantId} };
		my @bad;
		if (!$got) { push @bad, 'missing'; }
		else
		{
			push @bad, 'sku' unless $got->{sku} eq $sku;
			push @bad, 'name' unless ($got->{name} // '') eq ($v->{variantName} // '');
			push @bad, 'value' unless ($got->{value} // "\0") eq ($v->{variantValue} // "\0");
			push @bad, 'gtins' unless JSON::PP->new->canonical->encode($got->{gtins} // [])
			  eq JSON::PP->new->canonical->encode($v->{gtins} // []);
			for my $pair ([ lowest_ask => 'lowestAskAmount' ],
				[ highest_bid => 'highestBidAmount' ], [ sell_faster => 'sellFasterAmount' ],
				[ earn_more => 'earnMoreAmount' ], [ flex_lowest_ask => 'flexLowestAskAmount' ])
			{
				my ($col, $key) = @$pair;
				push @bad, $col unless num_eq($got->{$col}, $m->{$key});
			}
		}
		if (@bad) { $variant_errors++; diag("$sku variant $v->{variantId}: @bad"); }
	}
}
is($variant_errors, 0, "$variant_total variants stored with their market data");
is(scalar @$vrows, $variant_total, 'no variant rows beyond the stand-in\'s');

# --- the request budget: 3 per new product, 1 per not-found SKU
my $reqs = api_requests();
my %per_endpoint;
$per_endpoint{ $_->{endpoint} }++ for @$reqs;
is($per_endpoint{search}, $n, 'one search per SKU');
is($per_endpoint{variants}, scalar @found, 'one variants call per found product');
is($per_endpoint{market}, scalar @found, 'one market-data call per found product');
is(scalar @$reqs, 3 * @found + @missing, '3 requests per new product, 1 per unknown SKU');
is(scalar(grep { $_->{status} != 200 } @$reqs), 0, 'no request was refused');

# --- spacing: GCRA at $rate/s across both workers
my $interval = 1 / $rate;
my $gap = min_gap($reqs);
cmp_ok($gap, '>=', 0.7 * $interval,
	sprintf('closest two requests %.1f ms apart (interval %.1f ms)', 1000 * $gap, 1000 * $interval));
my $span = $reqs->[-1]{t} - $reqs->[0]{t};
cmp_ok(scalar(@$reqs) - 1, '<=', $span * $rate * 1.02 + 1,
	sprintf('%d requests in %.1f s never beat %d/s', scalar @$reqs, $span, $rate));

# --- the run row
my $run = $node->safe_psql('postgres',
	"SELECT workers, processed, enriched, not_found, failed, requests, responses_429, "
	  . "stop_reason, finished_at >= started_at FROM stockx_run WHERE run_id = $run_id");
is($run, join('|', 2, $n, scalar @found, scalar @missing, 0, scalar @$reqs, 0, 'done', 't'),
	'stockx_run counts the run');
is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_enrich_status'),
	0, 'no worker left after the run');

# --- a checkpoint line at every commit, and no secret in the log
my $log = slurp_file($node->logfile);
my @checkpoints = ($log =~ /stockx_enrich: checkpoint run=$run_id processed=\d+ total=\d+ enriched=\d+ not_found=\d+ failed=\d+ requests=\d+/g);
cmp_ok(scalar @checkpoints, '>=', int($n / 5), scalar(@checkpoints) . ' checkpoint lines for commits of 5 rows');
for my $secret ('test-api-key', 'test-secret', 'test-refresh')
{
	unlike($log, qr/\Q$secret\E/, "server log never shows $secret");
}

# --- a new start with nothing due starts nothing: no worker, no run row
my $before = scalar @{ api_requests() };
my $runs_before = $node->safe_psql('postgres', 'SELECT count(*) FROM stockx_run');
is($node->safe_psql('postgres', 'SELECT stockx_enrich_start(1) IS NULL'), 't',
	'with nothing due, stockx_enrich_start() returns NULL');
is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_run'), $runs_before,
	'and adds no stockx_run row');
is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_enrich_status'), 0,
	'and starts no worker');
is(scalar @{ api_requests() }, $before, 'and sends nothing');

note sprintf('enriched %d SKUs with %d requests in %.1f s', $n, scalar @$reqs, $elapsed);
$node->stop;
done_testing();
