# Never get the account blocked, part 2: the circuit breaker and the
# daily quota.
#
# (a) The stand-in blocks the account after one 429 (every request then
#     answers 429 for a few seconds, and retrying would extend a real block).
#     With circuit_threshold = 3 the extension sends at most 4 requests into
#     the block, ends the run with circuit_open, refuses new starts until the
#     circuit expires (saying when), and once block and circuit have expired
#     a single probe reopens the way and a new run finishes the queue.
# (b) daily_request_limit = 20: the run stops at exactly 20 requests with
#     quota, a new start is refused (until the day and the last 24 hours allow), and the
#     count survives a restart: no further request reaches the stand-in.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time sleep);
use StockxTest;

my $rate = 10;
my $threshold = 3;
my $block_s = 4;
my $open_ms = 6000;              # a bit longer than the block

# ---------------------------------------------------------------- helpers

# Call stockx_enrich_start expecting an error; returns (ok, stderr).
sub start_refused
{
	my ($node, $workers) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql('postgres', "SELECT stockx_enrich_start($workers)",
		stdout => \$stdout, stderr => \$stderr);
	return ($rc != 0, $stderr // '');
}

# ------------------------------------------------ (a) circuit breaker
my $node = stockx_node('circuit',
	requests_per_second => $rate,
	circuit_threshold => $threshold,
	circuit_open_ms => $open_ms,
	max_retries => 3,
	backoff_base_ms => 50,
	backoff_max_ms => 500);

admin_reset();
admin_config({ block => { after_429s => 1, seconds => $block_s } });
my @skus = map { sprintf('CB-%04d', $_) } 1 .. 30;
is(enqueue_skus($node, @skus), 30, '(a) 30 SKUs queued');

my $run1 = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(4)');
ok(poll_until(30, sub { admin_stats()->{api_total} >= 12 }), '(a) run under way');
admin_config({ fail_next => [ { status => 429, count => 1 } ] });
ok(poll_until(10, sub { admin_stats()->{blocks} >= 1 }),
	"(a) one 429 gets the account blocked for $block_s s at the stand-in");
is(wait_run($node, $run1, 60), 'circuit_open', '(a) the run ends with circuit_open');

my $stats = admin_stats();
my ($b0, $b1) = ($stats->{block_started_t}, $stats->{block_until_t});
my $reqs = api_requests();
my @in_block = grep { $_->{t} >= $b0 && $_->{t} < $b1 } @$reqs;
my @after_block_start = grep { $_->{t} >= $b0 } @$reqs;
cmp_ok(scalar @in_block, '<=', $threshold + 1,
	sprintf('(a) only %d requests went into the %d s block (circuit_threshold %d + 1 at most)',
		scalar @in_block, $block_s, $threshold));
cmp_ok(scalar @in_block, '>=', 1, '(a) the blocking 429 itself is in the window');
is(scalar(grep { $_->{status} != 429 } @in_block), 0, '(a) all of them answered 429');
is(scalar @after_block_start, scalar @in_block, '(a) nothing was sent after the circuit opened');
is(scalar(grep { $_->{status} == 429 } @$reqs), scalar @in_block,
	'(a) no 429 before the block');

my $lim = $node->safe_psql('postgres',
	'SELECT circuit_state, circuit_open_until > now(), consecutive_429 >= ' . $threshold
	  . ', responses_429_total FROM stockx_enrich_limiter');
my ($cstate, $cfuture, $ccons, $ctotal) = split /\|/, $lim;
is($cstate, 'open', '(a) stockx_enrich_limiter shows circuit_state open');
is($cfuture, 't', '(a) circuit_open_until lies in the future');
is($ccons, 't', "(a) consecutive_429 reached circuit_threshold ($threshold)");
is($ctotal, scalar @in_block, '(a) responses_429_total counts every 429');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM stockx_enrich_alerts WHERE alert = 'circuit_open'"),
	1, '(a) stockx_enrich_alerts raises circuit_open');

my $run_row = $node->safe_psql('postgres',
	"SELECT responses_429, failed, stop_reason FROM stockx_run WHERE run_id = $run1");
is($run_row, scalar(@in_block) . '|0|circuit_open', '(a) stockx_run: the 429s counted, nothing failed');
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status = 'failed') || '|' || count(*) FILTER (WHERE status = 'pending' AND attempts = 0) || '|' || count(*) FILTER (WHERE lease_pid IS NOT NULL) FROM stockx_product"),
	'0|' . $node->safe_psql('postgres', "SELECT count(*) FROM stockx_product WHERE status <> 'enriched'") . '|0',
	'(a) 429s blame no row: unfinished rows are pending with attempts 0 and no lease');

# a start while the circuit is open is refused, saying until when
my $before = admin_stats()->{api_total};
my ($refused, $err) = start_refused($node, 4);
ok($refused, '(a) stockx_enrich_start() is refused while the circuit is open');
like($err, qr/circuit breaker is open until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/,
	'(a) the error says until when the circuit is open');
like($err, qr/HINT:.*again after that time/, '(a) the hint says to try again after that time');
is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_enrich_status'), 0,
	'(a) the refused start launched no worker');
is(admin_stats()->{api_total}, $before, '(a) and sent nothing');

my $log = slurp_file($node->logfile);
like($log, qr/circuit breaker open after repeated 429 answers, run $run1 stops/,
	'(a) the server log says why the run stopped');

# wait out the block and the circuit
my $wait_db = $node->safe_psql('postgres',
	'SELECT greatest(extract(epoch FROM circuit_open_until - now()), 0) FROM stockx_enrich_limiter');
$stats = admin_stats();
my $wait_block = $stats->{block_until_t} - $stats->{now_t};
my $wait = ($wait_db > $wait_block ? $wait_db : $wait_block) + 0.3;
note sprintf('waiting %.1f s for the block and the circuit to expire', $wait);
sleep($wait) if $wait > 0;
is(admin_stats()->{api_total}, $before, '(a) nothing at all reached the stand-in while the circuit was open');
is($node->safe_psql('postgres', 'SELECT circuit_state FROM stockx_enrich_limiter'),
	'half_open', '(a) once circuit_open_ms has passed the circuit is half_open');

# the probe: slow answers make it visible that the others wait for it
admin_config({ latency_ms => 300 });
my $n_before = scalar @$reqs;
my $run2 = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(4)');
is(wait_run($node, $run2, 60), 'done', '(a) after the block, a new start finishes the queue (done)');
$reqs = api_requests();
my @run2_reqs = @$reqs[ $n_before .. $#$reqs ];
is(scalar(grep { $_->{status} != 200 } @run2_reqs), 0, '(a) the new run got no 429');
cmp_ok($run2_reqs[0]{t}, '>=', $b1, '(a) its first request came after the block ended');
cmp_ok(scalar @run2_reqs >= 2 ? $run2_reqs[1]{t} - $run2_reqs[0]{t} : 0, '>=', 0.29,
	'(a) half-open: one probe first, the other workers waited for its answer (300 ms)');
is($node->safe_psql('postgres',
		'SELECT circuit_state || \'|\' || consecutive_429 FROM stockx_enrich_limiter'),
	'closed|0', '(a) the probe closed the circuit');
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status = 'enriched') || '/' || count(*) FROM stockx_product"),
	'30/30', '(a) every row enriched in the end');
$node->stop;

# ------------------------------------------------ (b) daily quota
SKIP:
{
	my $to_midnight = 86400 - (time() % 86400);
	skip 'too close to 00:00 UTC for a quota test', 15 if $to_midnight < 180;

	my $quota = 20;
	my $qnode = stockx_node('quota',
		requests_per_second => 20,
		daily_request_limit => $quota);
	admin_reset();
	my @qskus = map { sprintf('QU-%04d', $_) } 1 .. 15;
	is(enqueue_skus($qnode, @qskus), 15, '(b) 15 fresh SKUs queued (45 requests needed)');
	my $run = $qnode->safe_psql('postgres', 'SELECT stockx_enrich_start(2)');
	is(wait_run($qnode, $run, 60), 'quota', "(b) with daily_request_limit = $quota the run ends with quota");
	is(admin_stats()->{api_total}, $quota, "(b) exactly $quota requests reached the stand-in");
	is($qnode->safe_psql('postgres',
			"SELECT requests || '|' || stop_reason FROM stockx_run WHERE run_id = $run"),
		"$quota|quota", "(b) stockx_run counts $quota requests");
	is($qnode->safe_psql('postgres',
			"SELECT requests_today || '/' || daily_limit FROM stockx_enrich_limiter"),
		"$quota/$quota", '(b) stockx_enrich_limiter shows the quota spent');
	is($qnode->safe_psql('postgres',
			"SELECT requests FROM stockx_quota WHERE day = (now() AT TIME ZONE 'UTC')::date"),
		$quota, "(b) today's count is stored in stockx_quota");
	is($qnode->safe_psql('postgres',
			"SELECT count(*) FROM stockx_product WHERE status = 'failed' OR lease_pid IS NOT NULL"),
		0, '(b) no row failed or kept its lease because of the quota');

	my ($refused, $err) = start_refused($qnode, 1);
	ok($refused, '(b) a new start is refused');
	like($err, qr/daily StockX request quota is spent \($quota of $quota requests today, $quota in the last 24 hours\)/,
		'(b) the error says the quota is spent, today and in the last 24 hours');
	like($err, qr/The next request is allowed at/, '(b) and when the next request is allowed');

	$qnode->restart;
	is($qnode->safe_psql('postgres', 'SELECT requests_today FROM stockx_enrich_limiter'),
		$quota, '(b) after a restart stockx_enrich_limiter still shows the spent quota');
	($refused, $err) = start_refused($qnode, 1);
	ok($refused, '(b) after a restart a new start is still refused');
	like($err, qr/quota is spent \($quota of $quota requests today, $quota in the last 24 hours\).*next request is allowed at/s,
		'(b) with the same message');
	sleep(1);
	is(admin_stats()->{api_total}, $quota, '(b) no further request reached the stand-in');
	is($qnode->safe_psql('postgres', 'SELECT count(*) FROM stockx_enrich_status'), 0,
		'(b) and no worker runs');
	$qnode->stop;
}

done_testing();
