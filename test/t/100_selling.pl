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

$node->stop;
done_testing();

sub _account { return StockxTest::_admin('GET', '/_admin/selling'); }
