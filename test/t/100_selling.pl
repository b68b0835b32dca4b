# Know what you sell (issue 19): stockx_enrich_sync() copies the account's
# listings and orders from the stand-in's selling calls into stockx_listing
# and stockx_order, page by page through the shared limiter, each page a
# request of the run; products nobody holds are queued; a sync the quota
# interrupts goes on from its page.  Then what the shop reads: the payout
# drift against the fee schedule (a deliberately wrong fee row shows), the
# profit after cost, the reprice plan (against figures computed here, one
# listing held by its cost), and who may read any of it.
use strict;
use warnings;

use List::Util qw(max sum);
use POSIX ();
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('selling', requests_per_second => 50);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub run_sync
{
	my ($what, $want) = @_;
	my $run = sql('SELECT stockx_enrich_sync()');
	ok($run > 0, "$what: stockx_enrich_sync() starts run $run");
	is(wait_run($node, $run, 120), $want // 'done', "$what: the run ends " . ($want // 'done'));
	return $run;
}

sub selling_requests
{
	my ($since) = @_;
	return [ grep { $_->{t} > $since && $_->{endpoint} =~ /^(listings|orders_active|orders_history)$/ }
		  @{ admin_log() } ];
}

sub now_t { return admin_stats()->{now_t}; }

# what a person sees in psql, for the README (in the test's log)
sub show
{
	my ($q, $set) = @_;
	note("$q\n" . $node->safe_psql('postgres', ($set // '') . $q, extra_params => [ '-P', 'format=aligned', '-P', 'tuples_only=off', '-P', 'footer=off' ]));
}

# ---- the catalogue the shop holds: three products enriched (USD)
enqueue_skus($node, 'SX-SELL-1', 'SX-SELL-2', 'SX-SELL-3');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 120), 'done', 'the shop\'s products are enriched');

# ---- the first sync
my $account = _account();
my @listed = grep { my $id = $_->{listingId}; !grep { $_ eq $id } @{ $account->{expired} } } @{ $account->{listings} };
my $t0 = now_t();
my $run = run_sync('the first sync');
my $reqs = selling_requests($t0);
is(join(' ', map { $_->{endpoint} } @$reqs), 'orders_history listings orders_active',
	'one page of each feed: the history, the listings, the active orders');
like($reqs->[1]{query}, qr/(^|&)pageNumber=1(&|$)/, 'asking for page 1');
like($reqs->[1]{query}, qr/(^|&)pageSize=100(&|$)/, 'of 100, the most StockX gives');
is(sql("SELECT requests FROM stockx_run WHERE run_id = $run"), 3, 'the run counts the three requests');
is(sql('SELECT count(*) FROM stockx_listing'), scalar(@listed),
	scalar(@listed) . ' listings (every one but the expired)');
is(sql('SELECT count(*) FROM stockx_order'), scalar(@{ $account->{orders} }),
	scalar(@{ $account->{orders} }) . ' orders, active and past');
my ($o) = grep { $_->{payout} } @{ $account->{order_items} };
is(sql(qq{SELECT concat_ws(' ', status, amount, currency_code, payout_total, sale_price,
		payout_adjustments, jsonb_array_length(payout->'adjustments'))
	FROM stockx_order WHERE order_number = '$o->{orderNumber}'}),
	join(' ', $o->{status}, $o->{amount}, $o->{currencyCode}, $o->{payout}{totalPayout},
		$o->{payout}{salePrice}, $o->{payout}{totalAdjustments}, scalar(@{ $o->{payout}{adjustments} })),
	"order $o->{orderNumber}: its status, amount and payout with its fee lines");
is(sql(q{SELECT count(*) FROM stockx_order WHERE active}),
	scalar(grep { $_->{status} =~ /^(CREATED|CCAUTHORIZATIONFAILED|SHIPPED|RECEIVED|AUTHENTICATING|AUTHENTICATED|PAYOUTPENDING|PAYOUTCOMPLETED|SYSTEMFULFILLED|PAYOUTFAILED|SUSPENDED)$/ }
		@{ $account->{order_items} }),
	'the active ones are marked active');
# the style ids StockX gives for the products of listings and orders the shop does not hold
my %held = map { lc($_) => 1 } split /\n/, sql(q{SELECT stockx_product_id FROM stockx_product WHERE stockx_product_id IS NOT NULL});
my %styles = map { $_->{product}{styleId} => 1 } grep { !$held{ lc($_->{product}{productId}) } }
  (@listed, @{ $account->{order_items} });
my @unknown = sort keys %styles;
cmp_ok(scalar(@unknown), '>=', 2, 'the account sells products the shop does not hold');
is(sql(q{SELECT string_agg(sku, ' ' ORDER BY sku COLLATE "C") FROM stockx_product WHERE status = 'pending'}),
	join(' ', @unknown), 'the products of listings and orders nobody held are queued: ' . join(' ', @unknown));
is(sql(q{SELECT string_agg(feed || ':' || next_page || ':' || last_pages || ':' || (pass_started_at IS NULL), ' ' ORDER BY feed)
	FROM stockx_sync_state}),
	'listings:1:1:true orders_active:1:1:true orders_history:1:1:true', 'every feed finished its pass in one page');
show(q{SELECT feed, next_page, last_pages, last_rows, pages_today, last_error FROM stockx_sync_state ORDER BY feed});
is(sql(q{SELECT sync_requests_last || ' ' || sync_requests_today FROM stockx_enrich_budget}), '3 3',
	'stockx_enrich_budget: a full sync takes 3 requests, 3 asked today');

# ---- many pages, and a sync the quota interrupts goes on from its page
admin_config({ selling_listing_count => 250 });
my $today = sql('SELECT requests_today FROM stockx_enrich_limiter');
# the history (1 page) and 1 page of listings, then the quota is spent
$node->append_conf('postgresql.conf', 'stockx_enrich.daily_request_limit = ' . ($today + 2) . "\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.daily_request_limit') == $today + 2 });
$t0 = now_t();
run_sync('a sync of 250 listings with 2 requests of quota left', 'quota');
is(join(' ', map { "$_->{endpoint}:" . ($_->{query} =~ /pageNumber=(\d+)/)[0] } @{ selling_requests($t0) }),
	'orders_history:1 listings:1', 'it asked the history and the first page of listings');
is(sql(q{SELECT next_page || ' ' || (pass_started_at IS NOT NULL) || ' ' || rows_this_pass FROM stockx_sync_state WHERE feed = 'listings'}),
	'2 true 100', 'the listings stand at page 2 of a pass in progress, 100 rows in');
$node->append_conf('postgresql.conf', "stockx_enrich.daily_request_limit = 25000\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.daily_request_limit') eq '25000' });
$t0 = now_t();
$run = run_sync('the next sync');
is(join(' ', map { "$_->{endpoint}:" . ($_->{query} =~ /pageNumber=(\d+)/)[0] } @{ selling_requests($t0) }),
	'orders_history:1 listings:2 listings:3 orders_active:1',
	'the listings go on at page 2 (page 1 is not asked again), 3 pages in all');
$account = _account();
my %expired = map { $_ => 1 } @{ $account->{expired} };
my $now_listed = grep { !$expired{ $_->{listingId} } } @{ $account->{listings} };
is(sql('SELECT count(*) FROM stockx_listing'), $now_listed, "all $now_listed listings are there");
is(sql(q{SELECT last_pages || ' ' || last_rows FROM stockx_sync_state WHERE feed = 'listings'}), "3 $now_listed",
	"the pass took 3 pages for $now_listed rows");
like(sql(qq{SELECT from_date FROM stockx_sync_state WHERE feed = 'orders_history'}), qr/^\d{4}-\d\d-\d\d$/,
	'the history asks from a date after the first pass');


# ---- a sync stopped mid-pass goes on from its page
admin_config({ selling_listing_count => 1000, latency_ms => 200 });
$t0 = now_t();
my $stopped = sql('SELECT stockx_enrich_sync()');
ok(poll_until(30, sub { sql(q{SELECT next_page FROM stockx_sync_state WHERE feed = 'listings'}) >= 3 }),
	'a sync of 1000 listings is under way');
sql('SELECT stockx_enrich_stop()');
is(wait_run($node, $stopped, 60), 'stopped', 'stockx_enrich_stop() ends it: stopped');
my ($at) = split / /, sql(q{SELECT next_page || ' ' || (pass_started_at IS NOT NULL) FROM stockx_sync_state WHERE feed = 'listings'});
ok($at > 1 && $at < 10, "the listings stand at page $at of 10");
admin_config({ latency_ms => 0 });
$t0 = now_t();
run_sync('the sync after the stop');
my @pages = map { ($_->{query} =~ /pageNumber=(\d+)/)[0] } grep { $_->{endpoint} eq 'listings' } @{ selling_requests($t0) };
is("@pages", join(' ', $at .. 10), "it asks pages $at to 10 of the listings, none before");
admin_config({ selling_listing_count => 250 });
run_sync('back to 250 listings');

# ---- a 429, a server error, a refusal
$t0 = now_t();
admin_config({ fail_next => [ { endpoint => 'listings', status => 429, count => 1, retry_after => '1' },
	{ endpoint => 'orders_history', status => 503, count => 1 },
	{ endpoint => 'orders_active', status => 403, count => 1 } ] });
$run = run_sync('a sync that meets a 429, a 503 and a 403');
is(join(' ', map { "$_->{endpoint}:$_->{status}" } @{ selling_requests($t0) }),
	'orders_history:503 orders_history:200 listings:429 listings:200 listings:200 listings:200 orders_active:403',
	'the 503 and the 429 are asked again (after the pause), the 403 is not');
is(sql("SELECT requests || ' ' || responses_429 || ' ' || retries FROM stockx_run WHERE run_id = $run"), '7 1 2',
	'the run counts 7 requests, one 429, two retries');
like(sql(q{SELECT last_error FROM stockx_sync_state WHERE feed = 'orders_active'}), qr{^/selling/orders/active page 1: HTTP 403},
	'the active orders keep the refusal in stockx_sync_state');
is(sql(q{SELECT count(*) FROM stockx_sync_state WHERE last_error IS NOT NULL}), 1, 'the other feeds finished');
$t0 = now_t();
run_sync('the next sync');
is(sql(q{SELECT count(*) FROM stockx_sync_state WHERE last_error IS NOT NULL}), 0, 'a good pass clears the error');
admin_config({ selling_listing_count => undef });

# ---- what the shop reads: the products the account sells are enriched now
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 120), 'done', 'the queued products are enriched');
is(sql(q{SELECT count(*) FROM stockx_product WHERE status <> 'enriched'}), 0, 'every one');

# the payout StockX's level-1 fees in USD give: 9 % and 3 %, each rounded to the cent
sub r2 { my $x = shift; return POSIX::floor($x * 100 + 0.5) / 100; }
sub payout_at { my ($a, $txn) = @_; return r2($a - r2($a * ($txn // 9) / 100) - r2($a * 3 / 100)); }

# ---- real payouts against the fee schedule
my @usd = grep { $_->{payout} && $_->{currencyCode} eq 'USD' } @{ $account->{order_items} };
ok(scalar(@usd) >= 1, 'the account has paid-out orders in USD');
for my $u (@usd)
{
	my $drift = r2($u->{payout}{totalPayout} - payout_at($u->{amount}));
	is(sql(qq{SELECT expected_payout || ' ' || drift FROM stockx_payout_drift WHERE order_number = '$u->{orderNumber}'}),
		sprintf('%.2f %.2f', payout_at($u->{amount}), $drift),
		"order $u->{orderNumber}: expected at level 1 " . payout_at($u->{amount}) . ", drift $drift (what the fee rows lack)");
}
# a fee row entered wrong: 5 % instead of 9 % from 1 November
sql(q{INSERT INTO stockx_fee_schedule (valid_from, seller_level, currency_code, transaction_fee_pct, payment_fee_pct, minimum_fee, shipping, source)
	VALUES ('2026-11-01', 1, 'USD', 5, 3, 0, 0, 'typed wrong')});
for my $u (@usd)
{
	my $txn = $u->{createdAt} ge '2026-11-01' ? 5 : 9;
	my $drift = r2($u->{payout}{totalPayout} - payout_at($u->{amount}, $txn));
	is(sql(qq{SELECT drift FROM stockx_payout_drift WHERE order_number = '$u->{orderNumber}'}), sprintf('%.2f', $drift),
		"with the wrong row, order $u->{orderNumber} ($u->{createdAt}) drifts by $drift");
}
my ($late) = grep { $_->{createdAt} ge '2026-11-01' } @usd;
ok(defined $late && sql(qq{SELECT abs(drift_pct) > 3 FROM stockx_payout_drift WHERE order_number = '$late->{orderNumber}'}) eq 't',
	'an order after the wrong row drifts by more than 3 % of its amount');
is(sql(q{SELECT string_agg(seller_level || ':' || orders, ' ' ORDER BY seller_level) FROM stockx_payout_drift_by_level}),
	join(' ', map { "$_:" . scalar(grep { $_->{payout} } @{ $account->{order_items} }) } 1 .. 5),
	'stockx_payout_drift_by_level compares every paid order at each of the 5 levels');
show(q{SELECT order_number, currency_code AS cur, amount, actual_payout, expected_payout, drift, drift_pct FROM stockx_payout_drift ORDER BY created_at DESC});
show(q{SELECT seller_level, orders, orders_with_fees, mean_drift_pct, max_abs_drift_pct, orders_within_1pct, configured FROM stockx_payout_drift_by_level});
sql(q{DELETE FROM stockx_fee_schedule WHERE source = 'typed wrong'});

# ---- cost and profit
my %bad = (
	q{INSERT INTO stockx_cost (variant_id, cost) SELECT variant_id, -1 FROM stockx_listing LIMIT 1} => qr/^22023 Give what the item cost/,
	q{INSERT INTO stockx_cost (variant_id, cost, currency_code) SELECT variant_id, 10, 'XYZ' FROM stockx_listing LIMIT 1} => qr/^22023 StockX currencies/,
	q{INSERT INTO stockx_cost (listing_id, variant_id, cost) SELECT listing_id, variant_id, 10 FROM stockx_listing LIMIT 1} => qr/^22023 Set listing_id/,
);
like(sql_error($node, $_), $bad{$_}, "refused with SQLSTATE and hint: $_") for sort keys %bad;
is(sql('SELECT count(*) FROM stockx_cost'), 0, 'and nothing was written');

my $paid = $usd[0];
sql(qq{INSERT INTO stockx_cost (listing_id, cost, currency_code) VALUES ('$paid->{listingId}', 60, ' usd ')});
is(sql(qq{SELECT concat_ws(' ', payout, payout_actual, cost, profit) FROM stockx_order_profit WHERE order_number = '$paid->{orderNumber}'}),
	join(' ', $paid->{payout}{totalPayout}, 't', 60, sprintf('%.2f', $paid->{payout}{totalPayout} - 60)),
	"order $paid->{orderNumber}: profit = what StockX paid - what it cost");
my ($created) = grep { $_->{status} eq 'CREATED' } @{ $account->{order_items} };
is(sql(qq{SELECT payout || ' ' || payout_actual FROM stockx_order_profit WHERE order_number = '$created->{orderNumber}'}),
	sprintf('%.2f false', payout_at($created->{amount})), 'an active order not paid yet: the payout the fee schedule gives');
is(sql(q{SELECT count(*) FROM stockx_order_profit WHERE status = 'CANCELED' AND payout IS NULL}),
	scalar(grep { $_->{status} eq 'CANCELED' } @{ $account->{order_items} }), 'a canceled sale pays nothing');

# ---- the reprice plan, against figures computed here
admin_config({ selling_listing_count => 18 });
run_sync('a sync with four more listings');
is(sql(q{SELECT count(*) FROM stockx_listing WHERE missing_since IS NULL}), scalar(grep { !$expired{ $_->{listingId} } } @{ _account()->{listings} }),
	'the listings the last pass did not list (the 250 of before) are missing_since');
is(sql(q{SELECT count(*) FROM stockx_listing WHERE missing_since IS NULL}), scalar(grep { !$expired{ $_->{listingId} } } @{ _account()->{listings} }),
	'the listings the last pass did not list (the 250 of before) are missing_since');
my @plan_ids = split /\n/, sql(q{SELECT listing_id FROM stockx_listing l WHERE status = 'ACTIVE' AND currency_code = 'USD' AND missing_since IS NULL AND missing_since IS NULL
	AND EXISTS (SELECT FROM stockx_market m WHERE m.variant_id = l.variant_id AND m.currency_code = 'USD' AND m.lowest_ask IS NOT NULL)
	ORDER BY listing_id});
cmp_ok(scalar(@plan_ids), '>=', 4, scalar(@plan_ids) . ' active USD listings with a market');
# the first: a cost that keeps it above the lowest ask; the second: a cheap one
my %la = map { split / / } split /\n/, sql(q{SELECT l.listing_id || ' ' || m.lowest_ask FROM stockx_listing l
	JOIN stockx_market m ON m.variant_id = l.variant_id AND m.currency_code = 'USD'});
sql(qq{INSERT INTO stockx_cost (listing_id, cost) VALUES ('$plan_ids[0]', } . POSIX::floor($la{ $plan_ids[0] } * 0.95) . q{)});
sql(qq{INSERT INTO stockx_cost (listing_id, cost) VALUES ('$plan_ids[1]', 10)});
my %cost = map { split / / } split /\n/, sql(q{SELECT listing_id || ' ' || cost FROM stockx_cost WHERE listing_id IS NOT NULL});
my %amount = map { split / / } split /\n/, sql(q{SELECT listing_id || ' ' || amount FROM stockx_listing});
my $plan = $node->safe_psql('postgres', q{SET stockx_enrich.reprice_step = 2; SET stockx_enrich.reprice_min_profit = 5;
	SELECT concat_ws('|', listing_id, lowest_ask, is_lowest_ask, coalesce(floor_amount::text, ''), suggested_amount, action, held_by_cost,
		payout_at_amount, payout_at_suggested) FROM stockx_reprice_plan WHERE currency_code = 'USD' ORDER BY listing_id});
my %got = map { (split /\|/)[0] => $_ } split /\n/, $plan;
my $held = 0;
for my $id (@plan_ids)
{
	my ($amount, $ask) = ($amount{$id}, $la{$id});
	my $floor;
	if (defined $cost{$id})
	{
		$floor = 1;
		$floor++ while payout_at($floor) < $cost{$id} + 5;
	}
	my $candidate = $amount <= $ask ? $amount : $ask - 2;
	my $suggested = defined $floor && $floor > $candidate ? $floor : $candidate;
	my $action = $suggested == $amount ? 'keep' : $suggested < $amount ? 'lower' : 'raise';
	my $is_held = defined $floor && $ask - 2 < $floor ? 'true' : 'false';
	$held++ if $is_held eq 'true';
	my $want = join('|', $id, $ask + 0, $amount <= $ask ? 't' : 'f', $floor // '', $suggested, $action, $is_held eq 'true' ? 't' : 'f',
		sprintf('%.2f', payout_at($amount)), sprintf('%.2f', payout_at($suggested)));
	my $have = $got{$id} // 'missing';
	# numbers as numbers: 180 and 180.0 are the same amount
	$have =~ s/(\d+\.\d*?)0+(?=\||$)/$1/g; $have =~ s/\.(?=\||$)//g;
	$want =~ s/(\d+\.\d*?)0+(?=\||$)/$1/g; $want =~ s/\.(?=\||$)//g;
	is($have, $want, "listing $id at $amount (lowest ask $ask" . (defined $cost{$id} ? ", cost $cost{$id}" : '') . "): $action to $suggested");
}
is($held, 1, 'one listing is held above the lowest ask by its cost');
show(q{SELECT style_id, size, amount, lowest_ask, is_lowest_ask AS lowest, cost, floor_amount AS floor, suggested_amount AS suggested, action, held_by_cost AS held, payout_at_amount, payout_at_suggested FROM stockx_reprice_plan WHERE currency_code = 'USD' ORDER BY style_id, size},
	'SET stockx_enrich.reprice_step = 2; SET stockx_enrich.reprice_min_profit = 5; ');
show(q{SELECT order_number, status, currency_code AS cur, amount, payout, payout_actual AS actual, cost, profit, profit_pct FROM stockx_order_profit ORDER BY created_at DESC});

# ---- whose business it is
sql(q{CREATE ROLE nobody LOGIN; CREATE ROLE watcher LOGIN IN ROLE pg_monitor});
for my $role (qw(nobody watcher))
{
	for my $rel (qw(stockx_listing stockx_order stockx_cost stockx_payout_drift stockx_payout_drift_by_level stockx_order_profit stockx_reprice_plan stockx_listing_cost))
	{
		my ($rc, $out, $err) = $node->psql('postgres', "SELECT count(*) FROM $rel", extra_params => [ '-U', $role ]);
		like($err, qr/permission denied for (table|view) $rel/, "$role may not read $rel");
	}
	my ($rc, $out, $err) = $node->psql('postgres', 'SELECT stockx_enrich_sync()', extra_params => [ '-U', $role ]);
	like($err, qr/permission denied for function stockx_enrich_sync/, "nor start a sync");
}

like(sql_error($node, q{CREATE TABLE other_cost (LIKE stockx_cost);
	CREATE TRIGGER c BEFORE INSERT ON other_cost FOR EACH ROW EXECUTE FUNCTION stockx_cost_check();
	INSERT INTO other_cost (cost_id, variant_id, cost, currency_code) VALUES (1, gen_random_uuid(), 1, 'USD')}),
	qr/^42809 Drop that trigger/, 'stockx_cost_check() attached to another table refuses to run (42809)');

# ---- every run syncs too, with stockx_enrich.sync_selling
$node->append_conf('postgresql.conf', "stockx_enrich.sync_selling = on\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.sync_selling') eq 'on' });
$t0 = now_t();
is(sql('SELECT stockx_enrich_start() IS NULL'), 't',
	'no product due and every list synced less than sync_every (1 h) ago: no run');
$node->append_conf('postgresql.conf', "stockx_enrich.sync_every = 0\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.sync_every') eq '0' });
my $start = sql('SELECT stockx_enrich_start()');
ok($start > 0, 'with sync_every 0, a run starts with no product due: it has a sync to do');
is(wait_run($node, $start, 120), 'done', 'and ends done');
is(scalar(@{ selling_requests($t0) }), 3, 'having synced the three lists (and nothing before)');

$node->stop;
done_testing();

sub _account { return StockxTest::_admin('GET', '/_admin/selling'); }
