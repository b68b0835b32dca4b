# Defect: libcurl's progress callback aborted the transfer on any pending
# interrupt (InterruptPending), not only on a stop request, and the worker
# then ended the run as 'stopped'.  A memory-context dump request, the
# procsignal barrier of DROP DATABASE and the like thus killed runs.
#
# Expected now: with the stand-in answering slowly (1.5 s per request) and a
# worker mid-request, each of
#   * SELECT pg_log_backend_memory_contexts(<worker pid>),
#   * CREATE DATABASE x, then (mid-request again) DROP DATABASE x (a
#     procsignal barrier every backend must absorb),
#   * SELECT pg_reload_conf(),
# leaves the run going: it ends 'done' (not 'stopped'), every row is
# enriched, the stand-in saw exactly 3 API requests per product, and the
# requests the workers counted in stockx_run equal those the stand-in saw
# (no transfer was aborted and repeated).  The memory-context request is
# still served: the log shows the worker's memory contexts.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time sleep);
use StockxTest;

my $node = stockx_node('interrupts', requests_per_second => 50);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Wait until a request is in flight: one arrived at the stand-in less than
# 0.8 s ago (answers take 1.5 s) and its worker says 'requesting'.  Returns
# the pid of a requesting worker.
sub mid_request
{
	my $seen = admin_stats()->{api_total};
	return poll_until(6, sub {
		my $st = admin_stats();
		return undef unless $st->{api_total} > $seen;
		my @log = @{ api_requests() };
		return undef unless @log && $st->{now_t} - $log[-1]{t} < 0.8;
		return sql(q{SELECT pid FROM stockx_enrich_status WHERE state = 'requesting' LIMIT 1})
		  || undef;
	});
}

# One run of 2 workers over 2 products (and nothing else queued),
# interrupted by $interrupt (called with the pid of a worker that is
# mid-request).
sub interrupted_run
{
	my ($label, $interrupt) = @_;
	admin_reset();
	admin_config({ latency_ms => 1500 });
	# rows a stopped run left pending must not join this run
	sql('DELETE FROM stockx_product');
	my @skus = map { sprintf("IN-%s-%d", $label, $_) } 1 .. 2;
	enqueue_skus($node, @skus);
	my $run = sql('SELECT stockx_enrich_start(2)');
	my $pid = mid_request();
	ok($pid, "$label: a worker is mid-request");
	$interrupt->($pid) if $pid;

	is(wait_run($node, $run, 60), 'done', "$label: the run ends done, not stopped");
	is(sql(qq{SELECT count(*) FROM stockx_product WHERE status = 'enriched' AND sku LIKE 'IN-$label-%'}),
		scalar(@skus), "$label: every row is enriched");
	my $api = scalar @{ api_requests() };
	is($api, 3 * @skus, "$label: the stand-in saw exactly 3 API requests per product");
	is(sql("SELECT requests FROM stockx_run WHERE run_id = $run"), $api,
		"$label: stockx_run.requests equals the requests the stand-in saw");
}

interrupted_run('memory', sub {
	my ($pid) = @_;
	my $offset = -s $node->logfile;
	sql("SELECT pg_log_backend_memory_contexts($pid)");
	ok(poll_until(10, sub {
		slurp_file($node->logfile, $offset) =~ /logging memory contexts of PID $pid/ }),
		'memory: the memory contexts of the worker are logged');
});

interrupted_run('barrier', sub {
	sql('CREATE DATABASE x');
	ok(mid_request(), 'barrier: a worker is mid-request again');
	sql('DROP DATABASE x');
});

interrupted_run('reload', sub {
	sql('SELECT pg_reload_conf()');
});

$node->stop;
done_testing();
