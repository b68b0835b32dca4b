# Defect: stockx_enrich_start() inserted the run's stockx_run row in the
# caller's transaction, and the workers' first counter write waited on that
# uncommitted row; so stockx_enrich_wait(stockx_enrich_start(), ...) in one
# statement, or start and wait in one transaction, waited on workers that
# waited on it, until the timeout.  And a worker blocked on a row lock
# ignored stockx_enrich_stop() and SIGTERM (pg_terminate_backend) until the
# lock was released.
#
# Expected now:
#  (a) SELECT stockx_enrich_wait(stockx_enrich_start(), 20000) in one
#      statement returns 'done' and the rows are enriched;
#  (b) the same with start and wait as two statements inside
#      BEGIN ... COMMIT;
#  (c) while a session holds the run's stockx_run row FOR UPDATE and the
#      worker wants to write its counters, stockx_enrich_stop(5000)
#      from another session returns the number of workers within 2.5 s and
#      stockx_enrich_status is empty at once;
#  (d) in the same situation pg_terminate_backend(worker pid) ends the
#      worker within about 2 s (3 s allowed).
# (20 s is ample for 3 products at 20 requests/s; the waits are kept short so
# that the defect costs little time.)
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time sleep);
use StockxTest;

my $node = stockx_node('same_txn');
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub enriched
{
	my ($like) = @_;
	return sql("SELECT count(*) FILTER (WHERE status = 'enriched') || '/' || count(*) "
		  . "FROM stockx_product WHERE sku LIKE '$like'");
}

# ---------------------------------------------------------------- (a)
{
	enqueue_skus($node, map { sprintf('SA-%04d', $_) } 1 .. 3);
	my $t0 = time();
	my ($rc, $out, $err) = $node->psql('postgres',
		'SELECT stockx_enrich_wait(stockx_enrich_start(), 20000)');
	is($out, 'done', '(a) wait(start()) in one statement returns done')
	  or diag(sprintf('rc=%d, after %.1f s, stderr: %s', $rc, time() - $t0, $err));
	is(enriched('SA-%'), '3/3', '(a) and the rows are enriched');
}

# ---------------------------------------------------------------- (b)
{
	enqueue_skus($node, map { sprintf('SB-%04d', $_) } 1 .. 3);
	my ($rc, $out, $err) = $node->psql('postgres', q{
BEGIN;
SELECT stockx_enrich_start() AS run_id \gset
SELECT stockx_enrich_wait(:run_id, 20000);
COMMIT;
});
	is($out, 'done', '(b) start; wait; inside BEGIN ... COMMIT returns done')
	  or diag("rc=$rc stderr: $err");
	is(enriched('SB-%'), '3/3', '(b) and the rows are enriched');
}

# A run whose only worker wants to write its counters while a session holds
# the run's stockx_run row FOR UPDATE.  Returns (run id, worker pid, the
# session holding the lock).  The landed worker waits on the lock; a worker
# that does not wait on it must stop just as fast, so not waiting is noted,
# not failed.
sub blocked_worker
{
	my ($prefix) = @_;
	admin_reset();
	# 100 ms per request: the first commit (5 rows, 15 requests) comes after
	# about 1.5 s, long after the lock below is taken
	admin_config({ latency_ms => 100 });
	enqueue_skus($node, map { sprintf("$prefix-%04d", $_) } 1 .. 12);
	my $run = sql('SELECT stockx_enrich_start(1)');
	ok(poll_until(10, sub { sql("SELECT count(*) FROM stockx_run WHERE run_id = $run") == 1 }),
		"($prefix) the run's stockx_run row exists");
	my $holder = $node->background_psql('postgres');
	$holder->query_safe(
		"BEGIN; SELECT run_id FROM stockx_run WHERE run_id = $run FOR UPDATE");
	my $worker = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'stockx_enrich worker'};
	my $blocked = poll_until(5, sub { sql("$worker AND wait_event_type = 'Lock'") || undef });
	note($blocked ? "($prefix) the worker waits on the lock to write its counters"
		: "($prefix) the worker does not wait on the lock");
	# past its first commit by now (15 requests at 100 ms)
	ok(poll_until(5, sub { admin_stats()->{api_total} >= 15 }),
		"($prefix) the worker has done its first 5 rows");
	return ($run, $blocked // sql($worker), $holder);
}

# ---------------------------------------------------------------- (c)
{
	my ($run, $pid, $holder) = blocked_worker('SC');
	my $t0 = time();
	my $stopped = sql('SELECT stockx_enrich_stop(5000)');
	my $took = time() - $t0;
	is($stopped, 1, '(c) stockx_enrich_stop(5000) returns the number of workers: 1');
	cmp_ok($took, '<', 2.5, sprintf('(c) and returns within 2.5 s (took %.2f s)', $took));
	is(sql('SELECT count(*) FROM stockx_enrich_status'), 0, '(c) stockx_enrich_status is empty');
	$holder->query_safe('COMMIT');
	$holder->quit;
	# leave nothing running for the next part
	sql('SELECT stockx_enrich_stop(10000)');
}

# ---------------------------------------------------------------- (d)
{
	my ($run, $pid, $holder) = blocked_worker('SD');
  SKIP:
	{
		skip '(d) no worker to terminate', 1 unless $pid;
		my $t0 = time();
		sql("SELECT pg_terminate_backend($pid)");
		my $gone = poll_until(3, sub {
			sql("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") == 0 });
		my $took = time() - $t0;
		ok($gone, sprintf('(d) pg_terminate_backend ends the blocked worker within 3 s (%s)',
				$gone ? sprintf('%.2f s', $took) : 'still there'));
	}
	$holder->query_safe('COMMIT');
	$holder->quit;
	sql('SELECT stockx_enrich_stop(10000)');
	ok(poll_until(10, sub { sql('SELECT count(*) FROM stockx_enrich_status') == 0 }),
		'(d) no worker left once the lock is released');
}

$node->stop;
done_testing();
