# Observability: what an operator sees from psql while a run is under way
# and after it ended.
#
#  * stockx_enrich_status, stockx_enrich_limiter and stockx_enrich_queue,
#    polled by a role that is only a member of pg_monitor during a run slowed
#    down on purpose (stand-in latency 200 ms, 5 requests/s, 2 workers);
#  * that role may read the views but not start runs nor see secrets;
#  * pg_stat_activity shows the workers;
#  * stockx_enrich_alerts: nothing when all is well, responses_429 when more
#    than 10% of requests are answered 429, circuit_open when the circuit is
#    open;
#  * key=value checkpoint and rate-limit log lines;
#  * stockx_run counters and stop_reason for runs ended by
#    stockx_enrich_stop() and by max_products.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StockxTest;

my $node = stockx_node('status', requests_per_second => 5, max_retries => 10);
admin_reset();

my @docs_states = qw(starting claiming requesting waiting_rate_limit backing_off committing);
my %doc_state = map { $_ => 1 } @docs_states;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# As the monitoring role.
sub mon_sql
{
	return $node->safe_psql('postgres', $_[0], extra_params => [ '-U', 'mon' ]);
}

sub alerts
{
	return mon_sql('SELECT coalesce(string_agg(alert, \',\' ORDER BY alert), \'\') FROM stockx_enrich_alerts');
}

# ---------------------------------------------------------------- the monitoring role
sql('CREATE ROLE mon LOGIN IN ROLE pg_monitor');

for my $view (qw(stockx_enrich_status stockx_enrich_limiter stockx_enrich_queue stockx_enrich_alerts))
{
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM $view",
		extra_params => [ '-U', 'mon' ]);
	is($rc, 0, "a pg_monitor member can SELECT $view") or diag($err);
}
for my $call ('stockx_enrich_start()', 'stockx_enrich_stop()', 'stockx_enrich_requeue()')
{
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT $call",
		extra_params => [ '-U', 'mon' ]);
	(my $fn = $call) =~ s/\(.*//;
	ok($rc != 0 && $err =~ /permission denied for function $fn/,
		"a pg_monitor member may not call $call") or diag("rc=$rc err=$err");
}
is(mon_sql('SHOW stockx_enrich.client_secret'), '********',
	'SHOW stockx_enrich.client_secret gives ******** to a pg_monitor member');
is(mon_sql(q{SELECT string_agg(DISTINCT setting, ',') FROM pg_settings
	WHERE name IN ('stockx_enrich.client_secret', 'stockx_enrich.api_key',
	               'stockx_enrich.refresh_token', 'stockx_enrich.client_id')}),
	'********', 'and pg_settings masks every secret for it');
is(mon_sql(q{SELECT current_setting('stockx_enrich.refresh_token')}), '********',
	'and so does current_setting()');
is(sql('SHOW stockx_enrich.client_secret'), 'test-secret', 'a superuser sees the secret');

is(alerts(), '', 'no alert before any run');
is(mon_sql('SELECT count(*) FROM stockx_enrich_status'), 0, 'no worker row before any run');

# ---------------------------------------------------------------- a slow run, polled
my @skus = map { sprintf('ST%04d-%03d', 2000 + $_, $_) } 1 .. 40;
is(enqueue_skus($node, @skus), 40, '40 SKUs queued');
admin_config({ latency_ms => 200 });

my $run_id = sql('SELECT stockx_enrich_start(2)');
like($run_id, qr/^\d+$/, 'slow run started');

my $poll = q{
SELECT json_build_object(
  't', extract(epoch FROM clock_timestamp()),
  'status', (SELECT coalesce(json_agg(s ORDER BY pid), '[]') FROM (
       SELECT pid, run_id, state, current_sku, processed, enriched, not_found, failed,
              requests, responses_429, retries,
              extract(epoch FROM started_at) AS started_at,
              extract(epoch FROM last_checkpoint_at) AS last_checkpoint_at,
              memory_bytes
         FROM stockx_enrich_status) s),
  'limiter', (SELECT row_to_json(l) FROM (
       SELECT requests_per_second, extract(epoch FROM next_slot_at) AS next_slot_at,
              requests_today, circuit_state FROM stockx_enrich_limiter) l),
  'queue', (SELECT coalesce(json_object_agg(status, products), '{}') FROM stockx_enrich_queue),
  'activity', (SELECT coalesce(json_agg(pid ORDER BY pid), '[]') FROM pg_stat_activity
                WHERE backend_type = 'stockx_enrich worker'),
  'secret_seen', (SELECT count(*) FROM (
       SELECT s::text AS x FROM stockx_enrich_status s UNION ALL
       SELECT l::text FROM stockx_enrich_limiter l UNION ALL
       SELECT q::text FROM stockx_enrich_queue q UNION ALL
       SELECT a::text FROM stockx_enrich_alerts a) v
     WHERE x LIKE '%test-secret%' OR x LIKE '%test-refresh%' OR x LIKE '%test-api-key%'))
};
$poll =~ s/\n/ /g;

my @samples;
my $t0 = time();
while (time() - $t0 < 120)
{
	my $s = json_decode_utf8(mon_sql($poll));
	push @samples, $s;
	last if !@{ $s->{status} } && @samples > 5
	  && sql("SELECT finished_at IS NOT NULL FROM stockx_run WHERE run_id = $run_id") eq 't';
	usleep(150_000);
}
is(wait_run($node, $run_id, 60), 'done', 'the slow run ends done');
my @busy = grep { @{ $_->{status} } == 2 } @samples;
note sprintf('%d samples, %d with two workers, run took %.1f s',
	scalar @samples, scalar @busy, time() - $t0);
cmp_ok(scalar @busy, '>=', 10, 'stockx_enrich_status shows one row per worker (2 rows) while the run is busy');

# every row of every busy sample
my (@bad_rows, %seen_state);
for my $s (@busy)
{
	for my $w (@{ $s->{status} })
	{
		$seen_state{ $w->{state} }++;
		my @bad;
		push @bad, 'pid' unless ($w->{pid} // 0) > 0;
		push @bad, 'run_id' unless $w->{run_id} == $run_id;
		push @bad, "state $w->{state}" unless $doc_state{ $w->{state} };
		push @bad, 'memory_bytes' unless $w->{memory_bytes} > 0;
		push @bad, 'started_at' unless defined $w->{started_at};
		push @bad, 'no checkpoint after a commit'
		  if $w->{processed} > 0 && !defined $w->{last_checkpoint_at};
		push @bad, 'checkpoint before start'
		  if defined $w->{last_checkpoint_at} && $w->{last_checkpoint_at} < $w->{started_at};
		push @bad, 'counters' if $w->{enriched} + $w->{not_found} + $w->{failed} > $w->{processed};
		push @bad, 'requests < 3 per enriched' if $w->{requests} < 3 * $w->{enriched};
		push @bad_rows, "pid $w->{pid}: @bad" if @bad;
	}
}
is_deeply(\@bad_rows, [], 'each worker row has pid, run_id, a documented state, memory_bytes > 0 and a checkpoint time once it committed');
note 'states seen: ' . join(', ', map { "$_=$seen_state{$_}" } sort keys %seen_state);
ok($seen_state{requesting}, 'state requesting observed');
ok($seen_state{waiting_rate_limit}, 'state waiting_rate_limit observed (two workers share 5 requests/s)');
my @with_sku = grep { defined $_->{current_sku} && $_->{state} eq 'requesting' }
  map { @{ $_->{status} } } @busy;
my %known_sku = map { $_ => 1 } @skus;
ok(@with_sku && !grep({ !$known_sku{ $_->{current_sku} } } @with_sku),
	'a requesting worker names its current_sku, one of the queued SKUs');
my @checkpointed = grep { defined $_->{last_checkpoint_at} } map { @{ $_->{status} } } @busy;
ok(@checkpointed, 'last_checkpoint_at is set once a worker has committed');

is(scalar(grep { $_->{secret_seen} } @samples), 0, 'no view ever shows a secret');

# pg_stat_activity: the same pids as stockx_enrich_status
my @act_ok = grep {
	join(',', @{ $_->{activity} }) eq join(',', map { $_->{pid} } @{ $_->{status} })
} @busy;
cmp_ok(scalar @act_ok, '>=', 0.8 * @busy,
	"pg_stat_activity shows the workers with backend_type 'stockx_enrich worker' ("
	  . scalar(@act_ok) . ' of ' . scalar(@busy) . ' samples match exactly)');

# two samples at least 7 s apart (a worker commits every 5 rows, about every
# 6 s here), the first after a commit, with the same two workers
my $processed_of = sub { my $s = shift; my $n = 0; $n += $_->{processed} for @{ $s->{status} }; $n };
my ($sa, $sb);
OUTER:
for my $i (0 .. $#busy)
{
	next unless $processed_of->($busy[$i]) > 0;
	for my $j ($i + 1 .. $#busy)
	{
		next unless $busy[$j]{t} - $busy[$i]{t} >= 7;
		next unless join(',', map { $_->{pid} } @{ $busy[$i]{status} })
		  eq join(',', map { $_->{pid} } @{ $busy[$j]{status} });
		($sa, $sb) = ($busy[$i], $busy[$j]);
		last OUTER;
	}
}
ok(defined $sb, 'two samples 7 s apart with the same workers, the first after a commit');
if ($sb)
{
	note sprintf('samples at +%.1f s and +%.1f s', $sa->{t} - $t0, $sb->{t} - $t0);
	for my $k (0, 1)
	{
		my ($wa, $wb) = ($sa->{status}[$k], $sb->{status}[$k]);
		cmp_ok($wb->{requests}, '>', $wa->{requests},
			"worker $wa->{pid}: requests rise ($wa->{requests} -> $wb->{requests})");
		cmp_ok($wb->{processed}, '>=', $wa->{processed},
			"worker $wa->{pid}: processed never falls ($wa->{processed} -> $wb->{processed})");
	}
	cmp_ok($processed_of->($sb), '>', $processed_of->($sa),
		sprintf('processed rises across the workers (%d -> %d)', $processed_of->($sa), $processed_of->($sb)));

	my ($la, $lb) = ($sa->{limiter}, $sb->{limiter});
	is($la->{requests_per_second}, 5, 'stockx_enrich_limiter shows requests_per_second 5');
	cmp_ok($lb->{next_slot_at}, '>', $la->{next_slot_at}, 'stockx_enrich_limiter: next_slot_at advances');
	cmp_ok($lb->{requests_today}, '>', $la->{requests_today},
		"stockx_enrich_limiter: requests_today rises ($la->{requests_today} -> $lb->{requests_today})");
	my $rise = $lb->{requests_today} - $la->{requests_today};
	my $dt = $sb->{t} - $sa->{t};
	cmp_ok($rise, '<=', 5 * $dt + 2, sprintf('%d requests in %.1f s respect 5/s', $rise, $dt));
	is($la->{circuit_state}, 'closed', 'circuit closed');

	my ($qa, $qb) = ($sa->{queue}, $sb->{queue});
	cmp_ok($qb->{pending} // 0, '<', $qa->{pending} // 0,
		sprintf('stockx_enrich_queue: pending shrinks (%d -> %d)', $qa->{pending} // 0, $qb->{pending} // 0));
	cmp_ok($qb->{enriched} // 0, '>', $qa->{enriched} // 0,
		sprintf('stockx_enrich_queue: enriched grows (%d -> %d)', $qa->{enriched} // 0, $qb->{enriched} // 0));
}

is(sql("SELECT concat_ws('|', workers, processed, enriched, not_found, failed, requests, responses_429, stop_reason)
	FROM stockx_run WHERE run_id = $run_id"),
	"2|40|40|0|0|120|0|done", 'stockx_run counts the slow run');
is(mon_sql('SELECT count(*) FROM stockx_enrich_status'), 0, 'no worker row after the run');
is(mon_sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stockx_enrich worker'}),
	0, 'no worker in pg_stat_activity after the run');
is(mon_sql(q{SELECT products FROM stockx_enrich_queue WHERE status = 'enriched'}), 40,
	'stockx_enrich_queue counts 40 enriched');
is(alerts(), '', 'no alert after a healthy run');

# ---------------------------------------------------------------- checkpoint log lines
my $log = slurp_file($node->logfile);
my @cp = grep { /stockx_enrich: checkpoint run=$run_id / } split /\n/, $log;
cmp_ok(scalar @cp, '>=', 8, scalar(@cp) . ' checkpoint lines for 40 rows committed 5 at a time');
my @cp_bad;
for my $line (@cp)
{
	my %kv = $line =~ /\b([a-z_0-9]+)=(\d+)\b/g;
	my @missing = grep { !exists $kv{$_} } qw(processed total enriched not_found failed requests 429s memory);
	push @cp_bad, $line if @missing;
}
is_deeply(\@cp_bad, [], 'every checkpoint line has key=value processed, total, enriched, not_found, failed, requests, 429s, memory');
ok((grep { /\btotal=40\b/ } @cp), 'the last checkpoint shows total=40');
ok(!(grep { /\bmemory=0\b/ } @cp), 'checkpoint lines report memory > 0');

# ---------------------------------------------------------------- stopped by stockx_enrich_stop()
my @skus2 = map { sprintf('SP%04d-%03d', 3000 + $_, $_) } 1 .. 30;
enqueue_skus($node, @skus2);
my $run_stop = sql('SELECT stockx_enrich_start(2)');
$node->poll_query_until('postgres',
	"SELECT coalesce(sum(processed), 0) >= 5 FROM stockx_enrich_status")
  or die 'nothing committed';
my $t_stop = time();
is(sql('SELECT stockx_enrich_stop()'), 2, 'stockx_enrich_stop() stops both workers');
cmp_ok(time() - $t_stop, '<', 2.5, 'within a second or two');
is(wait_run($node, $run_stop, 10), 'stopped', 'the run ends with stop_reason stopped');
my ($p, $e, $r, $fin) = split /\|/, sql(
	"SELECT processed, enriched, requests, finished_at IS NOT NULL FROM stockx_run WHERE run_id = $run_stop");
cmp_ok($p, '>=', 5, "stockx_run counts the work done before the stop (processed $p)");
cmp_ok($p, '<', 30, 'but not all of it');
cmp_ok($r, '>=', 3 * $e, "requests $r for $e enriched");
is($fin, 't', 'finished_at is set');
is(sql(q{SELECT count(*) FROM stockx_product WHERE sku LIKE 'SP%' AND status = 'enriched'}), $e,
	'stockx_run.enriched equals the rows enriched');
is(sql('SELECT count(*) FROM stockx_product WHERE lease_pid IS NOT NULL'), 0, 'no lease left behind');

# ---------------------------------------------------------------- max_products
admin_config({ latency_ms => 0 });
my $enriched_before = sql(q{SELECT count(*) FROM stockx_product WHERE status = 'enriched'});
my $run_max = sql('SELECT stockx_enrich_start(1, 7)');
is(wait_run($node, $run_max, 60), 'max_products', 'stockx_enrich_start(1, 7) ends with max_products');
is(sql("SELECT concat_ws('|', processed, enriched, requests, max_products) FROM stockx_run WHERE run_id = $run_max"),
	'7|7|21|7', 'and processed exactly 7 products with 21 requests');
is(sql(q{SELECT count(*) FROM stockx_product WHERE status = 'enriched'}) - $enriched_before, 7,
	'7 more rows are enriched');

# ---------------------------------------------------------------- 429s over 10% of requests
sql(q{ALTER SYSTEM SET stockx_enrich.requests_per_second = 50});
sql('SELECT pg_reload_conf()');
sleep 1;
my @skus3 = map { sprintf('RL%04d-%03d', 4000 + $_, $_) } 1 .. 10;
enqueue_skus($node, @skus3);
my $pending = sql(q{SELECT count(*) FROM stockx_product WHERE status = 'pending'});
admin_reset();
admin_config({ error_429_ratio => 0.2 });
my $run_429 = sql('SELECT stockx_enrich_start(2)');
is(wait_run($node, $run_429, 90), 'done', 'a run with 20% 429 answers still completes');
my ($p4, $e4, $r4, $n429, $retries) = split /\|/, sql(
	"SELECT processed, enriched, requests, responses_429, retries FROM stockx_run WHERE run_id = $run_429");
is("$p4|$e4", "$pending|$pending", "all $pending pending products enriched");
cmp_ok($n429 * 10, '>', $r4, "$n429 of $r4 requests answered 429 (> 10%)");
is($n429, scalar(grep { $_->{status} == 429 } @{ api_requests() }), 'stockx_run.responses_429 matches the 429s sent');
is(alerts(), 'responses_429', 'stockx_enrich_alerts shows responses_429 (and nothing else)');
like(mon_sql(q{SELECT detail FROM stockx_enrich_alerts WHERE alert = 'responses_429'}),
	qr/^$n429 of $r4 requests/, 'its detail gives the numbers');

$log = slurp_file($node->logfile);
my @rl = grep { /stockx_enrich: rate limited/ } split /\n/, $log;
is(scalar @rl, $n429, 'one rate-limit log line per 429');
my @rl_bad = grep { !/rate limited endpoint=(search|variants|market-data) .*\bretry=\d+\/10 wait_ms=\d+/ } @rl;
is_deeply(\@rl_bad, [], 'rate-limit log lines name the endpoint, the retry number (of max_retries) and the wait');

# ---------------------------------------------------------------- circuit open
sql(q{ALTER SYSTEM SET stockx_enrich.circuit_threshold = 3});
sql(q{ALTER SYSTEM SET stockx_enrich.circuit_open_ms = 8000});
sql('SELECT pg_reload_conf()');
sleep 1;
admin_reset();
admin_config({ fail_next => [ { status => 429, count => 20 } ] });
enqueue_skus($node, map { sprintf('CO%04d-%03d', 5000 + $_, $_) } 1 .. 5);
my $t_open = time();
my $run_co = sql('SELECT stockx_enrich_start(1)');
is(wait_run($node, $run_co, 30), 'circuit_open', 'three 429s in a row end the run with circuit_open');
my $al = alerts();
like($al, qr/\bcircuit_open\b/, "stockx_enrich_alerts shows circuit_open ($al)");
is(mon_sql('SELECT circuit_state FROM stockx_enrich_limiter'), 'open', 'stockx_enrich_limiter: circuit_state open');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT stockx_enrich_start(1)');
like($err, qr/circuit breaker is open/, 'a start while the circuit is open is refused');

# after circuit_open_ms, one probe closes it again and alerts clear
my $left = 8 - (time() - $t_open) + 0.5;
usleep(int($left * 1e6)) if $left > 0;
admin_reset();
my $run_ok = sql('SELECT stockx_enrich_start(1)');
is(wait_run($node, $run_ok, 60), 'done', 'after circuit_open_ms a new run probes and completes');
is(mon_sql('SELECT circuit_state FROM stockx_enrich_limiter'), 'closed', 'the circuit is closed again');
is(alerts(), '', 'and stockx_enrich_alerts is empty again');

$node->stop;
done_testing();
