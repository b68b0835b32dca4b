# Several requests in flight per worker.
#
# (a) One worker (the default stockx_enrich_start()) with answers slower than
#     the rate interval keeps several requests in flight: the stand-in sees
#     requests of that one worker overlap, stockx_enrich_status shows them,
#     and a product still costs 3 requests.
# (b) stockx_enrich.requests_in_flight = 1 keeps one request at a time.
# (c) Stop with requests in flight: stockx_enrich_stop() ends the worker
#     within a second or two, the run ends 'stopped', the rows go back to
#     the queue untouched (pending, attempts 0, no lease).
#
# Overlap is read from the stand-in's log: every answer takes latency_ms,
# so two requests that arrived less than latency_ms apart were in flight
# together.  No assertion depends on how fast the machine is.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use StockxTest;

my $latency_ms = 1000;
my $node = stockx_node('in_flight', requests_per_second => 10);

# Largest number of requests in flight at once, from arrival times.
sub max_overlap
{
	my ($reqs, $window_s) = @_;
	my @t = sort { $a <=> $b } map { $_->{t} } @$reqs;
	my $max = 0;
	for my $i (0 .. $#t)
	{
		my $n = grep { $_ >= $t[$i] && $_ < $t[$i] + $window_s } @t;
		$max = $n if $n > $max;
	}
	return $max;
}

# ------------------------------------------------ (a) one worker, four in flight
{
	admin_reset();
	admin_config({ latency_ms => $latency_ms });
	my @skus = map { sprintf('IF-%04d', $_) } 1 .. 12;
	enqueue_skus($node, @skus);
	my $run_id = $node->safe_psql('postgres', 'SELECT stockx_enrich_start()');
	my $seen = poll_until(20, sub {
			$node->safe_psql('postgres',
				'SELECT max(requests_in_flight) FROM stockx_enrich_status') >= 2 });
	ok($seen, '(a) stockx_enrich_status shows the one worker with 2 or more requests in flight');
	# what pg_stat_activity says it waits for: its own wait event from 17 on
	my $want = $node->pg_version >= 17 ? 'StockxEnrichHttpAnswer' : 'Extension';
	ok(poll_until(10, sub {
				$node->safe_psql('postgres',
					"SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity "
					  . "WHERE backend_type = 'stockx_enrich worker'") eq "Extension:$want" }),
		"(a) pg_stat_activity shows the worker waiting on Extension:$want");
	is(wait_run($node, $run_id, 120), 'done', '(a) the run ends done');
	my $reqs = api_requests();
	is(scalar @$reqs, 36, '(a) 36 requests for 12 new products: 3 each');
	cmp_ok(max_overlap($reqs, $latency_ms / 1000 * 0.9), '>=', 3,
		'(a) the stand-in saw 3 or more requests of one worker in flight together');
	is($node->safe_psql('postgres',
			"SELECT workers || '|' || enriched || '|' || requests FROM stockx_run WHERE run_id = $run_id"),
		'1|12|36', '(a) stockx_run: 1 worker, 12 enriched, 36 requests');
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM stockx_product WHERE sku LIKE 'IF-%' AND status = 'enriched'"),
		12, '(a) every product enriched');
}

# ------------------------------------------------ (b) requests_in_flight = 1
{
	$node->append_conf('postgresql.conf', "stockx_enrich.requests_in_flight = 1\n");
	$node->reload;
	admin_reset();
	admin_config({ latency_ms => 300 });
	my @skus = map { sprintf('IG-%04d', $_) } 1 .. 4;
	enqueue_skus($node, @skus);
	my $run_id = $node->safe_psql('postgres', 'SELECT stockx_enrich_start()');
	is(wait_run($node, $run_id, 60), 'done', '(b) the run ends done');
	my $reqs = api_requests();
	is(scalar @$reqs, 12, '(b) 12 requests');
	is(max_overlap($reqs, 0.25), 1, '(b) requests_in_flight = 1: never two requests at once');
	$node->append_conf('postgresql.conf', "stockx_enrich.requests_in_flight = 4\n");
	$node->reload;
}

# ------------------------------------------------ (c) stop with requests in flight
{
	admin_reset();
	admin_config({ latency_ms => 5000 });
	my @skus = map { sprintf('IH-%04d', $_) } 1 .. 10;
	enqueue_skus($node, @skus);
	my $run_id = $node->safe_psql('postgres', 'SELECT stockx_enrich_start()');
	ok(poll_until(20, sub {
				$node->safe_psql('postgres',
					'SELECT max(requests_in_flight) FROM stockx_enrich_status') >= 3 }),
		'(c) the worker has 3 or more requests in flight');
	my $t0 = time();
	is($node->safe_psql('postgres', 'SELECT stockx_enrich_stop(5000)'), 1,
		'(c) stockx_enrich_stop() stops the worker');
	my $took = time() - $t0;
	cmp_ok($took, '<', 2.5, sprintf('(c) within a second or two (%.2f s), not after the answers', $took));
	is(wait_run($node, $run_id, 10), 'stopped', '(c) the run ends stopped');
	is($node->safe_psql('postgres',
			"SELECT count(*) FILTER (WHERE status = 'pending' AND attempts = 0 AND lease_pid IS NULL) "
			  . "|| '/' || count(*) FROM stockx_product WHERE sku LIKE 'IH-%'"),
		'10/10', '(c) every row is back in the queue, pending, attempts 0, no lease');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_enrich_status'), 0,
		'(c) no worker is left');
	# the answers still come back later; nobody is there to write them
	sleep(5.5);
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM stockx_product WHERE sku LIKE 'IH-%' AND status <> 'pending'"),
		0, '(c) answers that arrive after the stop change nothing');
}

$node->stop;
done_testing();
