# Price alerts (issue 19, item 5): stockx_price_alert rows fire one
# price_alert event when a write of the product's market data crosses their
# line, not one per refresh while it stays crossed, and again after the
# price went back and crossed anew.  Bad input gets an SQLSTATE and a hint
# and writes nothing; the table is the shop's (no PUBLIC, no pg_monitor);
# an alert somebody holds in an open transaction never makes a worker wait.
use strict;
use warnings;

use POSIX ();
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('alerts', requests_per_second => 50, notify_change_pct => 0);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub run_ok
{
	my ($what) = @_;
	is(wait_run($node, sql('SELECT stockx_enrich_start()'), 120), 'done', "$what: the run ends done");
}

sub make_due
{
	sql(q{UPDATE stockx_product SET market_updated_at = market_updated_at - interval '2 days'
		   WHERE status = 'enriched'});
}

# the price_alert events since event $after, oldest first
sub alert_events
{
	my ($after) = @_;
	my $rows = sql(qq{SELECT coalesce(json_agg(payload ORDER BY event_id), '[]') FROM stockx_event
		WHERE kind = 'price_alert' AND event_id > $after});
	return json_decode_utf8($rows);
}

sub last_event { return sql('SELECT coalesce(max(event_id), 0) FROM stockx_event'); }

enqueue_skus($node, 'AL-0001', 'AL-0002');

# ---- bad input: an SQLSTATE, a hint, nothing written
my %bad = (
	q{INSERT INTO stockx_price_alert (sku, currency_code, condition, amount) VALUES ('AL-0001', 'XYZ', 'ask_at_or_below', 100)}
	  => qr/^22023 StockX currencies are the 30 codes/,
	q{INSERT INTO stockx_price_alert (sku, condition, amount) VALUES ('AL-0001', 'ask_below', 100)}
	  => qr/^22023 Use 'ask_at_or_below'/,
	q{INSERT INTO stockx_price_alert (sku, condition, amount) VALUES ('AL-0001', 'ask_at_or_below', -5)}
	  => qr/^22023 Give an amount/,
	q{INSERT INTO stockx_price_alert (sku, condition, amount) VALUES ('AL-0001', 'ask_at_or_below', 'NaN')}
	  => qr/^22023 Give an amount/,
	q{INSERT INTO stockx_price_alert (sku, condition, amount) VALUES ('NOPE-1', 'ask_at_or_below', 100)}
	  => qr/^23503 An alert watches a product of stockx_product: queue the SKU first/,
);
for my $q (sort keys %bad)
{
	like(sql_error($node, $q), $bad{$q}, "refused with SQLSTATE and hint: $q");
}
is(sql('SELECT count(*) FROM stockx_price_alert'), 0, 'and nothing was written');

# ---- the shop's business: neither PUBLIC nor pg_monitor reads it
sql(q{CREATE ROLE nobody LOGIN; CREATE ROLE watcher LOGIN IN ROLE pg_monitor});
for my $role (qw(nobody watcher))
{
	my ($rc, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM stockx_price_alert',
		extra_params => [ '-U', $role ]);
	like($err, qr/permission denied for table stockx_price_alert/, "$role may not read the alerts");
	($rc, $out, $err) = $node->psql('postgres',
		q{INSERT INTO stockx_price_alert (sku, condition, amount) VALUES ('AL-0001', 'ask_at_or_below', 1)},
		extra_params => [ '-U', $role ]);
	like($err, qr/permission denied for table stockx_price_alert/, "nor write them");
}
my ($rc, $out, $err) = $node->psql('postgres',
	q{CREATE TEMP TABLE t (x int); CREATE TRIGGER t BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION stockx_price_alert_check()},
	extra_params => [ '-U', 'nobody' ]);
like($err, qr/permission denied for function stockx_price_alert_check/,
	'nobody can attach the check to a table of its own');

like(sql_error($node, q{CREATE TABLE other_alert (LIKE stockx_price_alert);
	CREATE TRIGGER a BEFORE INSERT ON other_alert FOR EACH ROW EXECUTE FUNCTION stockx_price_alert_check();
	INSERT INTO other_alert (alert_id, sku, currency_code, condition, amount) VALUES (1, 'AL-0001', 'USD', 'ask_at_or_below', 1)}),
	qr/^42809 Drop that trigger/, 'stockx_price_alert_check() attached to another table refuses to run (42809)');

# ---- alerts on products queued but not yet enriched
my $p1 = expect_product('AL-0001');
my $p2 = expect_product('AL-0002');
my $min_ask1 = extreme_amount($p1->{market}, 'lowestAskAmount', sub { $_[0] < $_[1] });
my $min_ask2 = extreme_amount($p2->{market}, 'lowestAskAmount', sub { $_[0] < $_[1] });
my $max_bid1 = extreme_amount($p1->{market}, 'highestBidAmount', sub { $_[0] > $_[1] });
ok(defined $min_ask1 && defined $min_ask2 && defined $max_bid1, 'the stand-in prices both products');
# the size whose ask will move in AL-0002
my $m2 = $p2->{market}[1];

sql(qq{INSERT INTO stockx_price_alert (sku, condition, amount, note) VALUES
	('AL-0001', ' Ask_At_Or_Below ', $min_ask1 + 1, 'crossed at the first write'),
	('AL-0001', 'bid_at_or_above', $max_bid1 + 1000, 'never'),
	('AL-0002', 'ask_at_or_below', $min_ask2 - 20, 'crossed when a size drops by 30')});
is(sql(q{SELECT string_agg(condition || ' ' || currency_code || ' ' || crossed || ' ' || fired, ',' ORDER BY alert_id)
	FROM stockx_price_alert}),
	'ask_at_or_below USD false 0,bid_at_or_above USD false 0,ask_at_or_below USD false 0',
	'the alerts are stored, condition and currency normalized, not crossed');

my $mark = last_event();
run_ok('the first enrichment');
my $ev = alert_events($mark);
is(scalar(@$ev), 1, 'one price_alert event: the alert whose line the first write crossed');
my ($id1) = sql(q{SELECT alert_id FROM stockx_price_alert WHERE note = 'crossed at the first write'});
is("$ev->[0]{alert_id} $ev->[0]{sku} $ev->[0]{condition} $ev->[0]{currency_code}",
	"$id1 AL-0001 ask_at_or_below USD", 'it names the alert, SKU, condition and currency');
ok(num_eq($ev->[0]{price}, $min_ask1) && num_eq($ev->[0]{amount}, $min_ask1 + 1),
	"with the price that crossed ($min_ask1) and the line (" . ($min_ask1 + 1) . ')');
is($ev->[0]{size}, sql(qq{SELECT variant_value FROM stockx_variant WHERE variant_id = '$ev->[0]{variant_id}'}),
	'and the size that has that ask');
is(sql(qq{SELECT crossed || ' ' || fired || ' ' || (crossed_price = $min_ask1) FROM stockx_price_alert WHERE alert_id = $id1}),
	'true 1 true', 'the alert is marked crossed, fired once, at that price');

# ---- a refresh while it stays crossed: no event
make_due();
$mark = last_event();
run_ok('a refresh with the same prices');
is(scalar(@{ alert_events($mark) }), 0, 'no event while the line stays crossed');
is(sql(qq{SELECT fired FROM stockx_price_alert WHERE alert_id = $id1}), 1, 'fired stays 1');

# ---- AL-0002: a size drops below the line, stays, goes back, drops again
my ($id3) = sql(q{SELECT alert_id FROM stockx_price_alert WHERE sku = 'AL-0002'});
# the stand-in moves an ask by whole dollars: 30 or a little more below the cheapest
my $drop = { 'AL-0002#1' => POSIX::floor($min_ask2 - 30 - $m2->{lowestAskAmount}) };
admin_config({ price_moves => $drop });
my $dropped = expect_product('AL-0002')->{market}[1]{lowestAskAmount};
cmp_ok($dropped, '<=', $min_ask2 - 30, "the stand-in drops that size's ask to $dropped");
make_due();
$mark = last_event();
run_ok('a refresh where one size of AL-0002 drops');
$ev = alert_events($mark);
is(join(',', map { $_->{alert_id} } @$ev), $id3, 'the AL-0002 alert fires, alone');
note('the event: ' . sql(qq{SELECT payload FROM stockx_event WHERE kind = 'price_alert' AND event_id > $mark}));
ok(num_eq($ev->[0]{price}, $dropped), "at the new ask $dropped");
is(lc($ev->[0]{variant_id}), lc($m2->{variantId}), 'of the size that dropped');

make_due();
$mark = last_event();
run_ok('the next refresh, still below');
is(scalar(@{ alert_events($mark) }), 0, 'still crossed: no event');

admin_config({ price_moves => {} });
make_due();
$mark = last_event();
run_ok('the price goes back up');
is(scalar(@{ alert_events($mark) }), 0, 'going back over the line sends nothing');
is(sql(qq{SELECT crossed || ' ' || fired || ' ' || (crossed_at IS NULL) FROM stockx_price_alert WHERE alert_id = $id3}),
	'false 1 true', 'the alert is clear again, fired once');

admin_config({ price_moves => $drop });
make_due();
$mark = last_event();
run_ok('it drops again');
is(join(',', map { $_->{alert_id} } @{ alert_events($mark) }), $id3, 'a new crossing: a new event');
is(sql(qq{SELECT fired FROM stockx_price_alert WHERE alert_id = $id3}), 2, 'fired twice');

# ---- a changed line is a new alert
sql(qq{UPDATE stockx_price_alert SET amount = amount + 1 WHERE alert_id = $id3});
is(sql(qq{SELECT crossed FROM stockx_price_alert WHERE alert_id = $id3}), 'f',
	'changing the amount clears crossed');
make_due();
$mark = last_event();
run_ok('a refresh after the change');
is(join(',', map { $_->{alert_id} } @{ alert_events($mark) }), $id3, 'the changed alert fires for its new line');

# ---- an alert held in an open transaction: the worker does not wait for it
my $holder = $node->background_psql('postgres');
$holder->query_safe(qq{BEGIN; SELECT * FROM stockx_price_alert WHERE alert_id = $id3 FOR UPDATE});
sql(qq{UPDATE stockx_price_alert SET crossed = false WHERE alert_id = $id1});
make_due();
$mark = last_event();
my $t0 = time();
run_ok('a refresh while an alert is locked');
cmp_ok(time() - $t0, '<', 60, 'in less than a minute (lock_timeout is not waited out)');
is(sql(q{SELECT count(*) FROM stockx_product WHERE status = 'enriched'}), 2, 'no product failed');
is(join(',', map { $_->{alert_id} } @{ alert_events($mark) }), $id1,
	'the unlocked alert was compared (and fired), the locked one was skipped');
$holder->query_safe('COMMIT');
$holder->quit;

# ---- an alert on a barcode row merged into the product is compared at the product's writes
sql(q{INSERT INTO stockx_product (sku, status, query_kind, merged_into)
	VALUES ('00000000000017', 'merged', 'gtin', 'AL-0001')});
sql(qq{INSERT INTO stockx_price_alert (sku, condition, amount) VALUES ('00000000000017', 'ask_at_or_below', $min_ask1 + 1)});
make_due();
$mark = last_event();
run_ok('a refresh of the product a barcode row joined');
is(join(' ', map { "$_->{sku}:$_->{size}" } @{ alert_events($mark) }),
	'00000000000017:' . sql(qq{SELECT variant_value FROM stockx_variant v JOIN stockx_market m USING (variant_id)
		WHERE v.sku = 'AL-0001' AND m.currency_code = 'USD' ORDER BY m.lowest_ask, v.variant_value, v.variant_id LIMIT 1}),
	'the barcode row\'s alert fires on the product\'s sizes');

# ---- deleting the product deletes its alerts
sql(q{DELETE FROM stockx_product WHERE sku = 'AL-0001'});
is(sql(q{SELECT count(*) FROM stockx_price_alert WHERE sku = 'AL-0001'}), 0,
	'deleting a product deletes its alerts');

$node->stop;
done_testing();
