# An event never fails or blocks the write it describes (issue 15, item 5).
#
#  (a) While the owner truncates stockx_event in a transaction it keeps
#      open, a refresh that moves prices still commits its rows (1.2: every
#      market write inserted into stockx_event, waited for the lock until
#      lock_timeout, four times, and the worker exited); the events follow
#      once the table is free, none lost, none failed.
#  (b) A price move whose payload is over 8,000 bytes (a long size) is an
#      event like any other; the notification carries the id and kind only
#      (1.2: pg_notify refused the payload with 22023 and the product was
#      marked failed).
#  (c) From PostgreSQL 17 on, where the notification queue can be made
#      small: with the queue full (a listener that never reads), a refresh
#      with price moves commits and its events are in the table (1.2: the
#      commit failed with 54000 and the rows were lost).
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StockxTest;

my $node = stockx_node('outbox', requests_per_second => 20, notify_change_pct => 5);
my $small_queue = $node->pg_version >= 17;
if ($small_queue)
{
	$node->append_conf('postgresql.conf', "max_notify_queue_pages = 64\n");
	$node->restart;
}
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub set_rate
{
	my ($rate) = @_;
	sql("ALTER SYSTEM SET stockx_enrich.requests_per_second = $rate; SELECT pg_reload_conf()");
	poll_until(10, sub { sql('SHOW stockx_enrich.requests_per_second') == $rate })
	  or die "requests_per_second did not become $rate";
}

# Move variant 0 of each SKU by $usd and make every enriched row due.
sub move_prices
{
	my ($usd, @skus) = @_;
	admin_config({ price_moves => { map { ("$_#0" => $usd) } @skus } });
	sql(q{UPDATE stockx_product SET market_updated_at = now() - interval '2 days'
		   WHERE status = 'enriched'});
}

# ---------------------------------------------------------------- (a)
my @skus = map { sprintf('OB-%04d', $_) } 1 .. 12;
enqueue_skus($node, @skus);
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'the products are enriched');
move_prices(60, @skus);
set_rate(2);
my $mark = sql('SELECT now()');
my $owner = $node->background_psql('postgres');
$owner->query_safe('BEGIN; TRUNCATE stockx_event');
my $run = sql('SELECT stockx_enrich_start()');
# 12 refreshes at 2 requests/s: the first commit (5 rows) comes after about 2.5 s
my $t0 = time();
my $committed = poll_until(20, sub {
	sql(qq{SELECT count(*) >= 5 FROM stockx_product WHERE market_updated_at > '$mark'}) eq 't' });
ok($committed, sprintf('rows commit while the owner holds stockx_event truncated (%.1f s)', time() - $t0));
$owner->query_safe('COMMIT');
$owner->quit;
is(wait_run($node, $run, 60), 'done', 'the run ends done');
is(sql(qq{SELECT count(*) FROM stockx_product WHERE market_updated_at > '$mark'}), 12,
	'every refresh is written');
is(sql(q{SELECT count(*) FROM stockx_product WHERE status = 'failed'}), 0, 'no row failed');
is(sql(qq{SELECT count(*) FROM stockx_event WHERE kind = 'price_move' AND created_at > '$mark'}), 12,
	'and the 12 price moves are events, written once the table was free');
set_rate(20);

# ---------------------------------------------------------------- (b)
enqueue_skus($node, 'BIG-0001');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'a product with long sizes is enriched');
move_prices(60, 'BIG-0001');
$mark = sql('SELECT now()');
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN stockx_enrich');
is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'its refresh ends done');
is(sql(q{SELECT status FROM stockx_product WHERE sku = 'BIG-0001'}), 'enriched',
	'the product is not failed');
my $big = sql(qq{SELECT event_id || ' ' || octet_length(payload::text) FROM stockx_event
	WHERE kind = 'price_move' AND payload->>'sku' = 'BIG-0001' AND created_at > '$mark'});
my ($big_id, $big_len) = split / /, $big;
cmp_ok($big_len // 0, '>', 9000, "its price move is an event of $big_len bytes");
my $heard = '';
poll_until(10, sub { $heard .= $listener->query_safe('SELECT 1'); $heard =~ /"event_id": $big_id,/ });
like($heard, qr/payload "\{"event_id": $big_id, "kind": "price_move"\}"/,
	'the notification carries its id and kind');
$listener->quit;

# ---------------------------------------------------------------- (c)
SKIP:
{
	skip 'max_notify_queue_pages needs PostgreSQL 17', 5 unless $small_queue;

	# a listener that never reads: it LISTENs, then stays in a transaction
	my $holder = $node->background_psql('postgres');
	$holder->query_safe('LISTEN anything; BEGIN; SELECT 1');
	my ($rc, $out, $err) = $node->psql('postgres', q{
		DO $$ BEGIN
			FOR i IN 1 .. 2000 LOOP
				PERFORM pg_notify('filler', i || repeat('x', 7000));
				COMMIT;
			END LOOP;
		END $$});
	like($err, qr/too many notifications in the NOTIFY queue/, 'the notification queue is full');
	cmp_ok(sql('SELECT pg_notification_queue_usage()'), '>', 0.9, 'nearly all of it');

	move_prices(120, @skus);
	$mark = sql('SELECT now()');
	is(wait_run($node, sql('SELECT stockx_enrich_start()'), 60), 'done', 'a refresh run ends done');
	is(sql(qq{SELECT count(*) FROM stockx_product WHERE market_updated_at > '$mark'
		AND status = 'enriched' AND sku LIKE 'OB-%'}), 12, 'every refresh is written');
	is(sql(qq{SELECT count(*) FROM stockx_event WHERE kind = 'price_move' AND created_at > '$mark'
		AND payload->>'sku' LIKE 'OB-%'}), 12, 'and every price move is in stockx_event');
	$holder->query_safe('COMMIT');
	$holder->quit;
}

$node->stop;
done_testing();
