# Never get the account blocked, part 3: errors, tokens and stopping.
#
# (a) 5xx bursts are retried and the rows enrich; a row whose every request
#     fails 500 is due again later (attempts 1, next_attempt_at ahead) and
#     after max_attempts it is failed with a readable last_error.
# (b) 400 / 404 on variants, a malformed search answer and an answer over
#     max_response_bytes fail their row at once; the rest of the batch is
#     enriched.
# (c) An expired token (server-side expiry, and a short token lifetime) is
#     refreshed without failing any row.
# (d) Revoked tokens end the run with credentials, with a WARNING naming the
#     settings, rows left pending, and no secret in the server log.
# (e) stockx_enrich_stop() ends workers that wait on a 3 s answer within
#     about a second; the interrupted row stays pending.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time sleep);
use StockxTest;

my $node = stockx_node('errors_tokens',
	requests_per_second => 20,
	max_response_bytes => "'1MB'",
	backoff_base_ms => 50,
	backoff_max_ms => 500);

# ---------------------------------------------------------------- helpers

# ALTER SYSTEM SET (or RESET, for undef) and reload; waits until a new
# session (forked by the postmaster, like the workers) sees the values.
sub set_conf
{
	my (%conf) = @_;
	for my $k (sort keys %conf)
	{
		my $v = $conf{$k};
		$node->safe_psql('postgres', defined $v
			? "ALTER SYSTEM SET stockx_enrich.$k = '$v'"
			: "ALTER SYSTEM RESET stockx_enrich.$k");
	}
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	my $ok = poll_until(10, sub {
		for my $k (keys %conf)
		{
			my $want = $conf{$k};
			next unless defined $want;
			my $got = $node->safe_psql('postgres',
				"SELECT setting FROM pg_settings WHERE name = 'stockx_enrich.$k'");
			return 0 unless $got eq $want;
		}
		return 1;
	});
	die 'configuration reload not seen' unless $ok;
	sleep(0.3);
}

sub rows
{
	my ($like) = @_;
	my $json = $node->safe_psql('postgres', qq{
		SELECT coalesce(json_object_agg(sku, json_build_object('status', status,
			'attempts', attempts, 'last_error', last_error,
			'due_later', next_attempt_at > now(), 'leased', lease_pid IS NOT NULL)), '{}')
		  FROM stockx_product WHERE sku LIKE '$like'});
	return json_decode_utf8($json);
}

sub statuses
{
	my ($rows) = @_;
	my %n;
	$n{ $_->{status} }++ for values %$rows;
	return join(' ', map { "$_=$n{$_}" } sort keys %n);
}

sub start_and_wait
{
	my ($workers, $timeout) = @_;
	my $run_id = $node->safe_psql('postgres', "SELECT stockx_enrich_start($workers)");
	return ($run_id, wait_run($node, $run_id, $timeout // 60));
}

# ------------------------------------------------- (a) 5xx burst retried
{
	admin_reset();
	enqueue_skus($node, map { sprintf('EA-%04d', $_) } 1 .. 10);
	my $run_id = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(2)');
	ok(poll_until(20, sub { admin_stats()->{api_total} >= 5 }), '(a) run under way');
	admin_config({ fail_next => [ { status => 500, count => 2 } ] });
	is(wait_run($node, $run_id, 60), 'done', '(a) run with a burst of two 500s ends done');
	my $stats = admin_stats();
	is($stats->{by_status}{500}, 2, '(a) the stand-in answered two requests with 500');
	is(statuses(rows('EA-%')), 'enriched=10', '(a) all 10 rows still enriched');
	is($node->safe_psql('postgres', "SELECT max(attempts) FROM stockx_product WHERE sku LIKE 'EA-%'"),
		0, '(a) the retried 500s cost no row an attempt');
	cmp_ok($node->safe_psql('postgres', "SELECT retries FROM stockx_run WHERE run_id = $run_id"),
		'>=', 2, '(a) stockx_run counts the retries');
}

# ------------------------- (a) every request fails 500 -> failed after max_attempts
{
	# visible backoff: the row is due again 1.5 to 3 s later
	set_conf(max_attempts => 2, max_retries => 1, backoff_base_ms => 3000,
		backoff_max_ms => 6000);
	admin_reset();
	admin_config({ fail_next => [ { status => 500, count => 1000, endpoint => 'search' } ] });
	enqueue_skus($node, 'EF-0001');

	my ($run1, $reason1) = start_and_wait(1, 30);
	is($reason1, 'done', '(a) first run over an always-500 row ends done');
	my $r = rows('EF-0001')->{'EF-0001'};
	is($r->{status}, 'pending', '(a) after max_retries the row is still pending (1 of 2 attempts)');
	is($r->{attempts}, 1, '(a) attempts = 1');
	ok($r->{due_later}, '(a) next_attempt_at lies in the future (backoff)');
	like($r->{last_error} // '', qr/search: HTTP 500/, '(a) last_error says search answered HTTP 500');
	is(admin_stats()->{api_total}, 2, '(a) one request plus max_retries = 1 retry');

	is($node->safe_psql('postgres', 'SELECT stockx_enrich_start(1) IS NULL'), 't',
		'(a) a start before next_attempt_at finds nothing due and starts nothing');
	is(admin_stats()->{api_total}, 2, '(a) and does not touch the row early');

	my $wait = $node->safe_psql('postgres',
		"SELECT greatest(extract(epoch FROM next_attempt_at - now()), 0) FROM stockx_product WHERE sku = 'EF-0001'");
	sleep($wait + 0.2);
	my ($run2, $reason2) = start_and_wait(1, 30);
	is($reason2, 'done', '(a) second run ends done');
	$r = rows('EF-0001')->{'EF-0001'};
	is($r->{status}, 'failed', '(a) after max_attempts = 2 the row is failed');
	is($r->{attempts}, 2, '(a) attempts = 2');
	like($r->{last_error} // '', qr/^search: HTTP 500: Internal Server Error$/,
		'(a) readable last_error: "search: HTTP 500: Internal Server Error"');
	is(admin_stats()->{api_total}, 4, '(a) 2 requests per attempt, 4 in all');
	is($node->safe_psql('postgres', "SELECT failed FROM stockx_run WHERE run_id = $run2"),
		1, '(a) stockx_run counts the failed row');
	set_conf(max_attempts => undef, max_retries => undef, backoff_base_ms => 50,
		backoff_max_ms => 500);
}

# ------------------------------- (b) permanent errors fail at once, batch goes on
{
	admin_reset();
	my @plain = map { sprintf('EB-%04d', $_) } 1 .. 8;
	admin_config({
		fail_next => [ { status => 400, count => 1, endpoint => 'variants' },
					   { status => 404, count => 1, endpoint => 'variants' } ],
		malformed_skus => ['EB-MAL'],
		oversize_skus => ['EB-BIG'] });
	# 10 rows, batch_size 10, one worker: all of them in one batch
	is(enqueue_skus($node, @plain, 'EB-MAL', 'EB-BIG'), 10, '(b) 10 SKUs queued: one batch');
	my ($run_id, $reason) = start_and_wait(1, 60);
	is($reason, 'done', '(b) the run ends done despite 4 bad rows');
	my $rows = rows('EB-%');
	is(statuses($rows), 'enriched=6 failed=4', '(b) 6 rows enriched, 4 failed');

	my $reqs = api_requests();
	my %id_of = map { expect_product($_)->{product}{productId} => $_ } @plain;
	for my $status (400, 404)
	{
		my @hit = grep { $_->{status} == $status } @$reqs;
		is(scalar @hit, 1, "(b) the stand-in answered one variants call $status");
		my ($pid) = ($hit[0]{path} // '') =~ m{/products/([^/]+)/variants$};
		my $sku = $id_of{ $pid // '' } // 'unknown';
		my $r = $rows->{$sku} // {};
		is("$r->{status}|$r->{attempts}", 'failed|1', "(b) $status on variants fails $sku at once (attempts 1)");
		like($r->{last_error} // '', qr/^variants: HTTP $status/, "(b) its last_error names the endpoint: variants: HTTP $status");
		is(scalar(grep { ($_->{path} // '') eq $hit[0]{path} } @$reqs), 1,
			"(b) the $status was not retried");
	}
	my $mal = $rows->{'EB-MAL'};
	is("$mal->{status}|$mal->{attempts}", 'failed|1', '(b) invalid JSON from search fails the row at once');
	like($mal->{last_error} // '', qr/malformed/, "(b) last_error says malformed: $mal->{last_error}");
	my $big = $rows->{'EB-BIG'};
	is("$big->{status}|$big->{attempts}", 'failed|1', '(b) a 10 MiB answer with max_response_bytes 1MB fails the row at once');
	like($big->{last_error} // '', qr/max_response_bytes/, "(b) last_error names max_response_bytes: $big->{last_error}");
	my @search_bad = grep { $_->{endpoint} eq 'search' && $_->{query} =~ /EB-(MAL|BIG)/ } @$reqs;
	is(scalar @search_bad, 2, '(b) one search each for the malformed and the oversize SKU: no retries');
	is(scalar @$reqs, 6 * 3 + 2 * 2 + 2, '(b) 24 requests: 3 per good row, no request wasted on bad ones');
	is($node->safe_psql('postgres',
			"SELECT processed || '|' || enriched || '|' || failed FROM stockx_run WHERE run_id = $run_id"),
		'10|6|4', '(b) stockx_run: 10 processed, 6 enriched, 4 failed');
}

# ------------------------------------------------ (c) token expiry
{
	admin_reset();
	enqueue_skus($node, map { sprintf('EC-%04d', $_) } 1 .. 20);
	my $run_id = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(2)');
	ok(poll_until(20, sub { admin_stats()->{api_total} >= 10 }), '(c) run under way');
	admin_config({ expire_tokens => JSON::PP::true });
	is(wait_run($node, $run_id, 60), 'done', '(c) tokens expired mid-run: the run still ends done');
	my $log = admin_log();
	my ($first401) = grep { ($_->{status} // 0) == 401 } @$log;
	ok($first401, '(c) the stand-in answered 401 to an expired token');
	# the token lives in shared memory: the run starts with the one the
	# earlier runs fetched, and the 401 needs exactly one fresh token for both workers
	my $tokens = grep { $_->{endpoint} eq 'token' } @$log;
	is($tokens, 1, "(c) one token request for the whole cluster after the 401 ($tokens)");
	my $refreshes = $first401 ? grep { $_->{endpoint} eq 'token' && $_->{t} > $first401->{t} } @$log : 0;
	cmp_ok($refreshes, '>=', 1, '(c) a fresh token was fetched after the 401');
	is(statuses(rows('EC-%')), 'enriched=20', '(c) all 20 rows enriched, none failed');
	is($node->safe_psql('postgres', "SELECT max(attempts) FROM stockx_product WHERE sku LIKE 'EC-%'"),
		0, '(c) the 401 cost no row an attempt');

	# a token that lives 4 s is renewed halfway through its life, before it
	# expires; the run (60 requests, 100 ms each) lasts longer than that
	# (a restart forgets the long-lived token kept in shared memory)
	$node->restart;
	admin_reset();
	admin_config({ token_ttl_s => 4, latency_ms => 100 });
	enqueue_skus($node, map { sprintf('ET-%04d', $_) } 1 .. 20);
	my ($run2, $reason2) = start_and_wait(1, 60);
	is($reason2, 'done', '(c) short-lived tokens: the run ends done');
	$log = admin_log();
	$tokens = grep { $_->{endpoint} eq 'token' } @$log;
	cmp_ok($tokens, '>=', 2, "(c) short-lived tokens were refreshed ($tokens token requests)");
	is(scalar(grep { ($_->{status} // 0) != 200 } @$log), 0,
		'(c) refreshed before they expired: no 401 at all');
	is(statuses(rows('ET-%')), 'enriched=20', '(c) all 20 rows enriched');
}

# ------------------------------------------------ (d) revoked credentials
{
	admin_reset();
	admin_config({ revoke_tokens => JSON::PP::true });
	# 15 rows: a batch of 10 for one worker, 5 for the other
	enqueue_skus($node, map { sprintf('ED-%04d', $_) } 1 .. 15);
	my $offset = -s $node->logfile;
	my ($run_id, $reason) = start_and_wait(2, 60);
	is($reason, 'credentials', '(d) every token refused: the run ends with credentials');
	my $rows = rows('ED-%');
	is(statuses($rows), 'pending=15', '(d) the rows stay pending, not failed');
	is(scalar(grep { $_->{attempts} != 0 || $_->{leased} } values %$rows), 0,
		'(d) with attempts 0 and no lease');
	my $api = admin_stats()->{api_total};
	cmp_ok($api, '<=', 4, "(d) no hammering: $api API requests (at most 2 per worker: one, then one after a refresh)");
	my $log = slurp_file($node->logfile, $offset);
	like($log, qr/WARNING:\s+stockx_enrich: StockX refused the credentials/,
		'(d) the server log has a WARNING about the credentials');
	like($log, qr/HINT:.*stockx_enrich\.api_key.*stockx_enrich\.refresh_token/,
		'(d) naming stockx_enrich.api_key and stockx_enrich.refresh_token');
	my $whole = slurp_file($node->logfile);
	for my $secret ('test-api-key', 'test-secret', 'test-refresh')
	{
		unlike($whole, qr/\Q$secret\E/, "(d) the server log never shows $secret");
	}
	admin_config({ revoke_tokens => JSON::PP::false });
}

# ------------------------------------------------ (e) stop mid-request
{
	admin_reset();
	admin_config({ latency_ms => 3000 });
	# 20 rows: a batch of 10 for each worker
	my @skus = map { sprintf('EE-%04d', $_) } 1 .. 20;
	enqueue_skus($node, @skus);
	my $run_id = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(2)');
	ok(poll_until(10, sub { admin_stats()->{api_total} >= 2 }),
		'(e) both workers wait on a 3 s answer');
	ok(poll_until(10, sub {
				$node->safe_psql('postgres',
					"SELECT count(*) FILTER (WHERE state = 'requesting' AND requests_in_flight > 0) "
					  . "|| '/' || count(*) FROM stockx_enrich_status") eq '2/2' }),
		'(e) stockx_enrich_status shows both workers requesting, with requests in flight');
	sleep(0.3);
	my $t0 = time();
	my $stopped = $node->safe_psql('postgres', 'SELECT stockx_enrich_stop(5000)');
	my $took = time() - $t0;
	is($stopped, 2, '(e) stockx_enrich_stop() returns the number of workers stopped');
	cmp_ok($took, '<', 2.0, sprintf('(e) it returned after %.2f s, mid-request (answers take 3 s)', $took));
	is(wait_run($node, $run_id, 10), 'stopped', "(e) the run's stop_reason is stopped");
	my $rows = rows('EE-%');
	is(statuses($rows), 'pending=20', '(e) the interrupted rows are still pending, not failed');
	is(scalar(grep { $_->{attempts} != 0 || $_->{leased} } values %$rows), 0,
		'(e) with attempts 0 and their leases given back');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_enrich_status'), 0,
		'(e) no worker left');

	# and the queue still finishes afterwards
	admin_config({ latency_ms => 0 });
	my ($run2, $reason2) = start_and_wait(2, 60);
	is($reason2, 'done', '(e) a new start finishes the interrupted rows');
	is(statuses(rows('EE-%')), 'enriched=20', '(e) all 20 enriched');
}

$node->stop;
done_testing();
