# One budget for the whole account: a program outside the database shares
# the workers' limiter through stockx_enrich_acquire() and
# stockx_enrich_report().
#
# Two workers and an outside client (this script: acquire through psql,
# then its own HTTP request to the stand-in, then report) share one strict
# limit (the stand-in refuses any gap shorter than 1/rate, less 5 ms): no 429, and the
# quota counts every request once.  A 429 the client reports pauses
# everybody; repeated ones open the circuit, which refuses the client and
# the workers alike; a spent quota refuses the client; only roles granted
# the functions may call them; bad arguments are refused clearly.
use strict;
use warnings;

use HTTP::Tiny;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StockxTest;

my $rate = 8;
# The client here is psql plus a Perl HTTP request: on a busy machine more
# than 400 ms can pass between its grant and its send, so it is given 1 s.
my $node = stockx_node('budget', requests_per_second => $rate,
	client_send_slack_ms => 1000, circuit_threshold => 3);
admin_reset();
# The stand-in stamps arrivals in a Python thread: on a loaded machine its
# own clock reading can lag by a few ms, so a gap must be 1/rate less 5 ms
# (4% of the interval), not to the microsecond.
my $tolerance_ms = 5;
admin_config({ rate_limit_rps => $rate, rate_tolerance_ms => $tolerance_ms });

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{CREATE ROLE budget_client LOGIN;
	GRANT EXECUTE ON FUNCTION stockx_enrich_acquire(int), stockx_enrich_report(int, text)
	   TO budget_client;
	CREATE ROLE not_granted LOGIN});

# As the outside program: one psql call, its answer and its error output.
sub client
{
	my ($q, $role) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$q",
		extra_params => [ '-U', $role // 'budget_client' ]);
	return ($rc, $out, $err);
}

my $http = HTTP::Tiny->new(timeout => 10);
my @client_status;

# The outside program's request: a slot, the request, the report.
sub client_request
{
	my ($sku) = @_;
	my ($rc, $granted, $err) = client('SELECT stockx_enrich_acquire(30000)');
	die "acquire failed: $err" if $rc != 0;
	my $r = $http->get(standin_url() . "/v2/catalog/search?query=$sku&pageNumber=1&pageSize=10",
		{ headers => { 'x-api-key' => 'test-api-key',
				'Authorization' => 'Bearer test-access-token' } });
	push @client_status, $r->{status};
	my $ra = $r->{headers}{'retry-after'};
	($rc, my $pause, $err) = client('SELECT stockx_enrich_report(' . $r->{status} . ', '
		  . (defined $ra ? "'$ra'" : 'NULL') . ')');
	die "report failed: $err" if $rc != 0;
	return $r->{status};
}

# --- two workers and the client, one strict limit
my @skus = map { sprintf('BUDGET-%03d', $_) } 1 .. 24;
enqueue_skus($node, @skus);
my $run = sql('SELECT stockx_enrich_start(2)');
like($run, qr/^\d+$/, 'a run of two workers started');
my $t0 = time();
for my $i (1 .. 8)
{
	client_request("CLIENT-$i");
	usleep(300_000);
}
note sprintf('client done after %.1f s', time() - $t0);
is(wait_run($node, $run, 120), 'done', 'the run ended done');
is_deeply(\@client_status, [ (200) x 8 ], 'every request of the client was answered 200');

my $stats = admin_stats();
my $worker_requests = sql("SELECT requests FROM stockx_run WHERE run_id = $run");
is($stats->{by_status}{429} // 0, 0, 'the strict limit refused nothing: 0 429s');
is($stats->{api_total}, $worker_requests + 8,
	"the stand-in saw the workers' $worker_requests requests and the client's 8");
is(sql('SELECT requests_today FROM stockx_enrich_limiter'), $stats->{api_total},
	'the daily quota counted each of them once');
is(sql(q{SELECT requests FROM stockx_quota WHERE day = (now() AT TIME ZONE 'UTC')::date}),
	$stats->{api_total}, 'and the persisted count too');
my $gap = min_gap(api_requests());
cmp_ok($gap, '>=', 1 / $rate - $tolerance_ms / 1000,
	sprintf('no two requests closer than 1/%d s (less %d ms) at the stand-in (%.4f s)', $rate, $tolerance_ms, $gap));

# --- roles and arguments
my ($rc, $out, $err) = client('SELECT stockx_enrich_acquire(1000)', 'not_granted');
like($err, qr/permission denied for function stockx_enrich_acquire/, 'a role not granted may not acquire');
($rc, $out, $err) = client('SELECT stockx_enrich_acquire(-1)');
like($err, qr/22023: timeout_ms must not be negative/, 'a negative timeout is refused (22023)');
($rc, $out, $err) = client('SELECT stockx_enrich_report(600)');
like($err, qr/22023: 600 is not an HTTP status/, 'a status that is not HTTP is refused (22023)');
($rc, $out, $err) = client('SELECT stockx_enrich_report(NULL)');
like($err, qr/22004: status must not be null/, 'a null status is refused (22004)');

# --- a spent quota refuses the client
my $today = sql('SELECT requests_today FROM stockx_enrich_limiter');
$node->append_conf('postgresql.conf', 'stockx_enrich.daily_request_limit = ' . ($today + 1) . "\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.daily_request_limit') == $today + 1 });
($rc, $out, $err) = client('SELECT stockx_enrich_acquire(5000) IS NOT NULL');
is($out, 't', 'the last request of the day is granted');
client('SELECT stockx_enrich_report(200)');
($rc, $out, $err) = client('SELECT stockx_enrich_acquire(5000)');
like($err, qr/53400: daily StockX request quota is spent \(\d+ of \d+ requests today, \d+ in the last 24 hours\)/,
	'then the spent quota refuses the client (53400)');
$node->append_conf('postgresql.conf', "stockx_enrich.daily_request_limit = 25000\n");
$node->reload;
poll_until(10, sub { sql('SHOW stockx_enrich.daily_request_limit') eq '25000' });

# --- a 429 the client reports pauses everybody
($rc, $out, $err) = client(q{SELECT stockx_enrich_report(429, '3')});
cmp_ok($out, '>=', 2500, "a 429 with Retry-After: 3 pauses every caller ($out ms)");
ok(sql(q{SELECT paused_until > now() + interval '2 seconds' FROM stockx_enrich_limiter}) eq 't',
	'the limiter view shows the pause');
($rc, $out, $err) = client('SELECT stockx_enrich_acquire(200)');
like($err, qr/55P03: no StockX request slot within 200 ms/, 'the client gets no slot meanwhile (55P03)');
like($err, qr/paused after a 429/, 'and is told why');
enqueue_skus($node, 'BUDGET-PAUSED');
$run = sql('SELECT stockx_enrich_start()');
usleep(1_000_000);
is(sql(q{SELECT count(*) FROM stockx_product WHERE sku = 'BUDGET-PAUSED' AND status = 'pending'}), 1,
	'a worker sends nothing during the pause either');
is(wait_run($node, $run, 60), 'done', 'and goes on after it');

# --- repeated 429s open the circuit, for the client and the workers
client(q{SELECT stockx_enrich_report(429, '0')}) for 1 .. 3;
is(sql('SELECT circuit_state FROM stockx_enrich_limiter'), 'open',
	'three 429s in a row (circuit_threshold) open the circuit');
($rc, $out, $err) = client('SELECT stockx_enrich_acquire(1000)');
like($err, qr/55000: StockX circuit breaker is open until/, 'the open circuit refuses the client (55000)');
enqueue_skus($node, 'BUDGET-CIRCUIT');
($rc, $out, $err) = $node->psql('postgres', 'SELECT stockx_enrich_start()');
like($err, qr/circuit breaker is open/, 'and a start');

$node->stop;
done_testing();
