# Freshness by priority, and the budget view.
#
# refresh_after is one day by default; a product's own refresh_every
# overrides it.  The claim order is: never-enriched products (by priority),
# then due refreshes by priority and then how long overdue, then not_found
# rechecks; rows not due are left alone.  stockx_enrich_budget counts the
# requests due work needs (3 per new product, 1 per refresh, one more per
# extra currency, 1 per not_found recheck) against the quota left, as
# counted here by hand.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('freshness', requests_per_second => 50);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

is(sql('SHOW stockx_enrich.refresh_after'), '1d', 'refresh_after is one day by default');

# --- enrich the products whose refreshes we order
my @known = qw(FRESH-A FRESH-B FRESH-C FRESH-D FRESH-E FRESH-H NF-FRESH-G);
enqueue_skus($node, @known);
my $id = sql('SELECT stockx_enrich_start()');
is(wait_run($node, $id, 120), 'done', 'the first run ended done');
is(sql(q{SELECT string_agg(sku || ':' || status, ' ' ORDER BY sku) FROM stockx_product}),
	'FRESH-A:enriched FRESH-B:enriched FRESH-C:enriched FRESH-D:enriched FRESH-E:enriched '
	  . 'FRESH-H:enriched NF-FRESH-G:not_found', 'six enriched, one not found');

# --- a known state: who is due, with which priority
sql(q{
	UPDATE stockx_product SET priority = 0, market_updated_at = now() - interval '3 days'
	 WHERE sku = 'FRESH-A';                      -- due 2 days ago
	UPDATE stockx_product SET priority = 5, market_updated_at = now() - interval '36 hours'
	 WHERE sku = 'FRESH-B';                      -- due 12 hours ago
	UPDATE stockx_product SET priority = 5, market_updated_at = now() - interval '2 days'
	 WHERE sku = 'FRESH-C';                      -- due 1 day ago
	UPDATE stockx_product SET priority = 0, refresh_every = '1 hour',
		   market_updated_at = now() - interval '2 hours'
	 WHERE sku = 'FRESH-D';                      -- its own interval: due 1 hour ago
	UPDATE stockx_product SET priority = 9,
		   market_updated_at = now() - interval '1 day'
			   + ((SELECT quota_resets_at FROM stockx_enrich_limiter) - now()) / 2
	 WHERE sku = 'FRESH-E';                      -- due later today, before the quota resets
	UPDATE stockx_product SET priority = 9, market_updated_at = now()
	 WHERE sku = 'FRESH-H';                      -- fresh: due tomorrow
	UPDATE stockx_product SET updated_at = now() - interval '8 days'
	 WHERE sku = 'NF-FRESH-G';                   -- a not_found recheck is due
	INSERT INTO stockx_product (sku) VALUES ('FRESH-F');
	INSERT INTO stockx_product (sku, priority) VALUES ('FRESH-F2', 3);
	INSERT INTO stockx_product (sku, next_attempt_at) VALUES ('FRESH-I', now() + interval '1 hour');
});

# --- the budget, counted by hand
# due now: 2 new products (F, F2; I waits for its retry), 4 refreshes
# (A, B, C, D), 1 not_found recheck (G); later today: 1 refresh (E).
# one currency: 2 * 3 + 4 * 1 + 1 = 11 requests, 1 later today.
my $b = json_decode_utf8(sql('SELECT row_to_json(b) FROM stockx_enrich_budget b'));
is(join(' ', map { $b->{$_} } qw(new_products refreshes refreshes_later_today not_found_rechecks
	currencies requests_due requests_due_later_today)), '2 4 1 1 1 11 1',
	'budget with one currency: 2 new, 4 refreshes, 1 later today, 1 recheck = 11 requests');
is($b->{quota_left_today}, 25000 - $b->{requests_today}, 'quota left is the limit less what was sent');
my $secs = sql(q{SELECT extract(epoch FROM backlog_done_at - now()) FROM stockx_enrich_budget});
ok(abs($secs - 11 / 50) < 1, "backlog done in 11 / 50 s ($secs)");

# two currencies and a small daily limit: 2 * 4 + 4 * 2 + 1 = 17 requests,
# 2 later today; with 20 a day and R sent today, 20 - R are left today and
# the rest is done after the reset, at 50 per second.
$node->append_conf('postgresql.conf',
	"stockx_enrich.currency_code = 'USD, EUR'\nstockx_enrich.daily_request_limit = 20\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.daily_request_limit') eq '20' });
$b = json_decode_utf8(sql('SELECT row_to_json(b) FROM stockx_enrich_budget b'));
is(join(' ', map { $b->{$_} } qw(currencies requests_due requests_due_later_today daily_limit)),
	'2 17 2 20', 'budget with two currencies: 17 requests, 2 later today');
my $left = 20 - $b->{requests_today};
$left = 0 if $left < 0;
is($b->{quota_left_today}, $left, "quota left today: $left");
cmp_ok(17, '>', $left, 'the backlog does not fit in what is left today');
my $spill = 17 - $left;
my $want = sql(qq{SELECT (quota_resets_at + make_interval(days => ($spill - 1) / 20)
	+ make_interval(secs => ((($spill - 1) % 20) + 1) / 50.0))::text FROM stockx_enrich_budget});
is(sql('SELECT backlog_done_at::text FROM stockx_enrich_budget'), $want,
	"the $spill requests over today's quota are done after the reset");

$node->append_conf('postgresql.conf',
	"stockx_enrich.currency_code = 'USD'\nstockx_enrich.daily_request_limit = 25000\n"
	  . "stockx_enrich.batch_size = 1\nstockx_enrich.requests_in_flight = 1\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.daily_request_limit') eq '25000' });

# --- the claim order, as the stand-in saw the requests
admin_reset();
$id = sql('SELECT stockx_enrich_start()');
is(wait_run($node, $id, 120), 'done', 'the refresh run ended done');
my %by_product = map { split /\|/ } split /\n/,
  sql(q{SELECT stockx_product_id || '|' || sku FROM stockx_product WHERE stockx_product_id IS NOT NULL});
my (@order, %seen);
for my $r (@{ api_requests() })
{
	my $sku;
	if ($r->{endpoint} eq 'search') { ($sku) = $r->{query} =~ /query=([^&]+)/; }
	elsif ($r->{path} =~ m{/products/([^/]+)/}) { $sku = $by_product{ lc $1 }; }
	$sku //= '?';
	push @order, $sku unless $seen{$sku}++;
}
is(join(' ', @order), 'FRESH-F2 FRESH-F FRESH-C FRESH-B FRESH-A FRESH-D NF-FRESH-G',
	'new products by priority, then due refreshes by priority and how long overdue, then rechecks');
is(sql('SELECT requests FROM stockx_run WHERE run_id = ' . $id), 2 * 3 + 4 + 1,
	'the run sent the 11 requests the budget announced');
is(sql(q{SELECT string_agg(sku, ' ' ORDER BY sku) FROM stockx_product
	WHERE market_updated_at > now() - interval '1 minute'}),
	'FRESH-A FRESH-B FRESH-C FRESH-D FRESH-F FRESH-F2 FRESH-H',
	'refreshed and new rows carry fresh market data (H was fresh already)');
is(sql(q{SELECT requests_due FROM stockx_enrich_budget}), 0, 'nothing is due afterwards');

$node->stop;
done_testing();
