# Events without polling: NOTIFY stockx_enrich and the stockx_event outbox.
#
# A listener hears the id and kind of (and reads from stockx_event): the end
# of a run (stop reason and counters), a price move above notify_change_pct
# (one per moved size, none for the others), the quota spent, the circuit
# opened by a client's 429s.  A notification carries only
# {"event_id", "kind"}: the consumer reads the row, so that a consumer that
# was offline catches up the same way; rows older than event_retention go.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use StockxTest;

my $node = stockx_node('events', requests_per_second => 50, notify_change_pct => 5,
	circuit_threshold => 3);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Run $q in a session that LISTENs; returns its notifications (decoded) and output.
sub listen_while
{
	my ($q) = @_;
	my ($rc, $out, $err) = $node->psql('postgres',
		"LISTEN stockx_enrich;\n$q;\nSELECT pg_sleep(0.3);\n");
	my @events;
	while ($out =~ /^Asynchronous notification "stockx_enrich" with payload "(.*)" received from server process with PID \d+\.$/mg)
	{
		my $note = json_decode_utf8($1);
		is(join(',', sort keys %$note), 'event_id,kind', "notification $note->{event_id}: its id and kind only");
		# the consumer reads the row
		my $row = json_decode_utf8(sql(qq{SELECT row_to_json(e) FROM stockx_events_since(NULL, 100000) e
			WHERE e.event_id = $note->{event_id}}));
		is($row->{kind}, $note->{kind}, "event $note->{event_id} is a $note->{kind} in stockx_event");
		push @events, { %{ $row->{payload} }, event_id => $row->{event_id}, kind => $row->{kind},
			created_at => $row->{created_at} };
	}
	diag($err) if $rc != 0;
	return (\@events, $out);
}

# every enriched row due for a refresh (refresh_after is one day)
sub make_due
{
	sql(q{UPDATE stockx_product SET market_updated_at = market_updated_at - interval '2 days'
		   WHERE status = 'enriched'});
}

sub kinds { return join(' ', map { $_->{kind} } @{ $_[0] }); }

# --- a run ends
my @skus = qw(EV-0001 EV-0002 EV-0003);
enqueue_skus($node, @skus);
my ($ev, $out) = listen_while('SELECT stockx_enrich_wait(stockx_enrich_start(), 60000)');
is(kinds($ev), 'run_end', 'a listener hears the end of the run, and nothing else');
my $run = sql('SELECT max(run_id) FROM stockx_run');
my $row = json_decode_utf8(sql(qq{SELECT row_to_json(r) FROM stockx_run r WHERE run_id = $run}));
my $e = $ev->[0];
is_deeply([ map { $e->{$_} } qw(run_id stop_reason workers processed enriched not_found failed requests responses_429 retries) ],
	[ map { $row->{$_} } qw(run_id stop_reason workers processed enriched not_found failed requests responses_429 retries) ],
	'its payload has the run id, stop reason and counters of stockx_run');
is("$e->{stop_reason} $e->{enriched} $e->{requests}", 'done 3 9', 'done, 3 enriched with 9 requests');
ok($e->{event_id} > 0 && defined $e->{created_at}, 'and the event id and time');

# --- a price move above notify_change_pct (5 %): one event, for that size
admin_config({ price_moves => { 'EV-0002#1' => 60 } });
my $moved = expect_product('EV-0002')->{market}[1];
my $before = sql(qq{SELECT lowest_ask FROM stockx_variant WHERE variant_id = '$moved->{variantId}'});
make_due();
($ev) = listen_while('SELECT stockx_enrich_wait(stockx_enrich_start(), 60000)');
is(kinds($ev), 'price_move run_end', 'a refresh that moved one size by 60 USD: one price move, then the end');
my ($pm) = grep { $_->{kind} eq 'price_move' } @$ev;
is(join(' ', map { $pm->{$_} } qw(sku variant_id currency_code)), "EV-0002 " . lc($moved->{variantId}) . ' USD',
	'the price move names the SKU, the size\'s variant and the currency');
ok(num_eq($pm->{lowest_ask_before}, $before) && num_eq($pm->{lowest_ask}, $moved->{lowestAskAmount}),
	"with the ask before ($before) and after ($moved->{lowestAskAmount})");
is($pm->{size}, sql(qq{SELECT variant_value FROM stockx_variant WHERE variant_id = '$moved->{variantId}'}),
	'and the size');

# a move below the threshold is no event
admin_config({ price_moves => { 'EV-0002#1' => 61 } });
make_due();
my $mark = sql('SELECT now()');
($ev) = listen_while('SELECT stockx_enrich_wait(stockx_enrich_start(), 60000)');
is(kinds($ev), 'run_end', 'a move of 1 USD (under 5 %) is no event');
is(sql(qq{SELECT count(*) FROM stockx_price_history h JOIN stockx_variant v USING (variant_id)
	WHERE v.sku = 'EV-0002' AND h.observed_at > '$mark'}), 1,
	'though the history records it');

# --- retention: the next run deletes events older than event_retention (7 days)
sql(q{INSERT INTO stockx_event (created_at, kind, payload) VALUES (now() - interval '8 days', 'run_end', '{}')});

# --- the quota is spent: the run ends with quota, and says so
my $today = sql('SELECT requests_today FROM stockx_enrich_limiter');
$node->append_conf('postgresql.conf', 'stockx_enrich.daily_request_limit = ' . ($today + 4) . "\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.daily_request_limit') == $today + 4 });
enqueue_skus($node, 'EV-0004', 'EV-0005');
($ev) = listen_while('SELECT stockx_enrich_wait(stockx_enrich_start(), 60000)');
is(kinds($ev), 'run_end quota_spent', 'a run that spends the quota: its end, then quota_spent');
is($ev->[0]{stop_reason}, 'quota', 'the run ended with quota');
is("$ev->[1]{requests_today} $ev->[1]{daily_limit}", ($today + 4) . ' ' . ($today + 4),
	'quota_spent says how many of how many');
is(sql(q{SELECT count(*) FROM stockx_event WHERE created_at < now() - interval '7 days'}), 0,
	'the run deleted the event older than event_retention');
$node->append_conf('postgresql.conf', "stockx_enrich.daily_request_limit = 25000\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.daily_request_limit') eq '25000' });

# --- a client's 429s open the circuit
($ev) = listen_while(join(";\n", map { q{SELECT stockx_enrich_report(429, '0')} } 1 .. 3));
is(kinds($ev), 'circuit_open', 'the 429 that opens the circuit is an event');
is("$ev->[0]{source} $ev->[0]{consecutive_429}", 'client 3', 'from a client, after 3 in a row');
ok(defined $ev->[0]{circuit_open_until}, 'with the time the circuit stays open until');

# --- the outbox: what a consumer that was offline reads
my $outbox = json_decode_utf8(sql(q{SELECT json_agg(e ORDER BY event_id) FROM stockx_event e}));
is(join(' ', map { $_->{kind} } @$outbox), 'run_end price_move run_end run_end run_end quota_spent circuit_open',
	'stockx_event holds every event in order');
is_deeply([ map { $_->{event_id} } @$outbox ], [ sort { $a <=> $b } map { $_->{event_id} } @$outbox ],
	'event ids grow');
is_deeply($outbox->[-1]{payload}{consecutive_429}, 3, 'with the payloads');

$node->stop;
done_testing();
