# Defect: stockx_enrich_start() reserved the run and worker slots in shared
# memory before its SQL work and before launching the workers; an ERROR, a
# query cancel or a terminated session in between, or a worker the
# postmaster could not start, left slots with pid 0 (NULL in
# stockx_enrich_status) that nobody ever freed.  Every later start in that
# database returned the dead run's id, stockx_enrich_wait() never returned
# and stockx_enrich_stop() timed out.
#
# Expected now:
#  (a) twenty starts cancelled by statement_timeout (1 to 30 ms) while the
#      stand-in answers slowly, then stockx_enrich_stop(): within a few
#      seconds stockx_enrich_status has no row with pid NULL (and no row at
#      all), and a normal start returns a run id never seen before whose run
#      ends 'done' with every queued row enriched;
#  (b) the same after pg_terminate_backend() or pg_cancel_backend() of a
#      session inside stockx_enrich_start(): one that waits on a lock held on
#      stockx_run, and sessions killed after random short delays;
#  (c) with max_worker_processes exhausted by a run in another database,
#      stockx_enrich_start(2) either starts what it can with a WARNING or
#      fails with an ERROR of SQLSTATE 53400 and a HINT; no slot with pid
#      NULL lingers, and once the other run is stopped a normal start works
#      and ends 'done'.
# The server is restarted between the parts, so each part starts clean.
use strict;
use warnings;
use feature 'state';

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time sleep);
use StockxTest;

my $node = stockx_node('wedged', requests_per_second => 50);
admin_reset();

sub sql { my ($q, $db) = @_; return $node->safe_psql($db // 'postgres', $q); }

# run ids seen so far, in any way: returned by a start, shown by
# stockx_enrich_status, or in stockx_run
my %seen;

sub note_seen
{
	my ($db) = @_;
	$db //= 'postgres';
	$seen{$_} = 1 for grep { /^\d+$/ } split /\n/, sql(
		'SELECT run_id FROM stockx_enrich_status UNION SELECT run_id FROM stockx_run', $db);
}

sub pid_null_rows
{
	my ($db) = @_;
	return sql('SELECT count(*) FROM stockx_enrich_status WHERE pid IS NULL', $db);
}

# A psql running $sql in the background; returns the IPC::Run harness and
# references to its stdout and stderr.
sub start_async
{
	my ($sql, $db) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr($db // 'postgres'), '-c', $sql ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return ($h, \$out, \$err);
}

# True once the background psql has exited.
sub async_done
{
	my ($h) = @_;
	$h->pump_nb if $h->pumpable;
	return !$h->pumpable;
}

# The common ending of every part: no slot without a pid after a few
# seconds, no worker left after stop, and a normal start returns a new run
# id whose run enriches every queued row.
sub check_recovers
{
	my ($part, $db) = @_;
	$db //= 'postgres';
	note_seen($db);
	sql('SELECT stockx_enrich_stop()', $db);
	my $clean = poll_until(5, sub { pid_null_rows($db) == 0 });
	ok($clean, "$part: within 5 s stockx_enrich_status has no row with pid NULL")
	  or diag('rows with pid NULL: ' . pid_null_rows($db));
	ok(poll_until($clean ? 10 : 0.1,
			sub { sql('SELECT count(*) FROM stockx_enrich_status', $db) == 0 }),
		"$part: and no worker at all after stockx_enrich_stop()");
	note_seen($db);

	admin_config({ latency_ms => 0 });
	# fresh work: a start with nothing due would rightly start nothing
	state $recoveries = 0;
	$recoveries++;
	sql(sprintf(q{SELECT stockx_enrich_enqueue(ARRAY['WR-%d-0001', 'WR-%d-0002'])},
			$recoveries, $recoveries), $db);
	my ($rc, $run, $err) = $node->psql($db, 'SELECT stockx_enrich_start()');
	ok($rc == 0 && $run =~ /^\d+$/, "$part: a normal start succeeds") or diag($err);
	$run = -1 unless $run =~ /^\d+$/;
	ok(!$seen{$run}, "$part: and returns a run id not seen before (got $run)");
  SKIP:
	{
		skip "$part: the start handed back an old run; not waiting on it", 2
		  if $seen{$run} || $run < 0;
		is(wait_run($node, $run, 60), 'done', "$part: the new run ends done");
		is(sql(q{SELECT count(*) FILTER (WHERE status <> 'enriched') FROM stockx_product}, $db),
			0, "$part: every queued row is enriched");
	}
	note_seen($db);
}

# ---------------------------------------------------------------- (a)
{
	admin_reset();
	admin_config({ latency_ms => 200 });
	enqueue_skus($node, map { sprintf('WA-%04d', $_) } 1 .. 8);
	my $cancelled = 0;
	for my $i (0 .. 19)
	{
		my $ms = 1 + int($i * 29 / 19);
		my ($rc, $out, $err) = $node->psql('postgres',
			"SET statement_timeout = '${ms}ms';\nSELECT stockx_enrich_start(2);");
		$cancelled++ if $err =~ /canceling statement due to statement timeout/;
		$seen{$out} = 1 if $rc == 0 && $out =~ /^\d+$/;
		note_seen();
		# a start that got through: stop its run before the next attempt
		sql('SELECT stockx_enrich_stop(2000)')
		  if sql('SELECT count(pid) FROM stockx_enrich_status') > 0;
	}
	note "(a) $cancelled of 20 starts were cancelled by statement_timeout";
	cmp_ok($cancelled, '>=', 1, '(a) statement_timeout cancelled starts');
	check_recovers('(a)');
	$node->restart;
}

# ---------------------------------------------------------------- (b)
{
	admin_reset();
	admin_config({ latency_ms => 200 });
	for my $kill ('pg_terminate_backend', 'pg_cancel_backend')
	{
		enqueue_skus($node, map { sprintf("WB-%s-%04d", substr($kill, 3, 4), $_) } 1 .. 3);
		# a session holds a lock the start may wait on
		my $locker = $node->background_psql('postgres');
		$locker->query_safe('BEGIN; LOCK TABLE stockx_run IN ACCESS EXCLUSIVE MODE');
		my ($h, $out, $err) = start_async('SELECT stockx_enrich_start(2)');
		my $victim_sql = q{SELECT pid || ' ' || coalesce(wait_event_type, '-') FROM pg_stat_activity
			 WHERE query = 'SELECT stockx_enrich_start(2)' AND state = 'active'};
		# wait until the start waits on a lock, or returned, or 3 s passed
		poll_until(3, sub { async_done($h) || sql($victim_sql) =~ / Lock$/ });
		my ($victim, $wait) = split / /, (async_done($h) ? '' : sql($victim_sql));
		if ($victim)
		{
			note "(b) the start is still running in backend $victim (waiting on: $wait); $kill";
			sql("SELECT $kill($victim)");
			ok(poll_until(10, sub { async_done($h) }), "(b) $kill ends the start");
		}
		else
		{
			note '(b) the start returned without waiting on the lock on stockx_run';
		}
		$locker->query_safe('ROLLBACK');
		$locker->quit;
		$h->finish;
		check_recovers("(b) $kill of a start waiting on a lock");
		$node->restart;
	}

	# sessions killed after random short delays: the killer sees the start
	# appear in pg_stat_activity, sleeps 0 to 25 ms and kills it
	my $killed = 0;
	for my $i (0 .. 15)
	{
		my $kill = $i % 2 ? 'pg_cancel_backend' : 'pg_terminate_backend';
		my $delay = ($i * 7 % 26) / 1000;
		my ($killer) = start_async(qq{
			DO \$\$
			DECLARE p int;
			BEGIN
				WHILE clock_timestamp() < statement_timestamp() + interval '1 s' LOOP
					PERFORM pg_stat_clear_snapshot();
					SELECT pid INTO p FROM pg_stat_activity
					 WHERE query = 'SELECT stockx_enrich_start(2)' AND state = 'active'
					   AND pid <> pg_backend_pid();
					EXIT WHEN p IS NOT NULL;
					PERFORM pg_sleep(0.0005);
				END LOOP;
				PERFORM pg_sleep($delay);
				IF p IS NOT NULL THEN
					PERFORM $kill(p);
				END IF;
			END \$\$;
		});
		# let the killer connect and start watching
		poll_until(5, sub {
			sql(q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_stat_clear_snapshot%' AND state = 'active' AND pid <> pg_backend_pid()}) > 0
		});
		my ($h, $out, $err) = start_async('SELECT stockx_enrich_start(2)');
		$killer->finish;
		$h->finish;
		$killed++ if $$err =~ /terminating connection|canceling statement|server closed/;
		$seen{$$out} = 1 if $$out =~ /^(\d+)$/;
		note_seen();
		sql('SELECT stockx_enrich_stop(2000)')
		  if sql('SELECT count(*) FROM stockx_enrich_status WHERE pid IS NOT NULL') > 0;
	}
	note "(b) $killed of 16 starts were killed mid-way";
	check_recovers('(b) starts killed after random delays');
	$node->restart;
}

# ---------------------------------------------------------------- (c)
{
	$node->append_conf('postgresql.conf', "max_worker_processes = 3\n");
	$node->restart;
	is(sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'logical replication launcher'}),
		1, '(c) max_worker_processes = 3, one of them the logical replication launcher');
	sql('CREATE DATABASE other');
	sql('CREATE EXTENSION stockx_enrich', 'other');

	# (c1) the other database holds both free slots, (c2) one of them
	for my $other_workers (2, 1)
	{
		my $part = "(c) other run with $other_workers worker(s)";
		admin_reset();
		admin_config({ latency_ms => 300 });
		sql('DELETE FROM stockx_product', 'other');
		sql(q{SELECT stockx_enrich_enqueue(array_agg(format('WO-%s-%s', }
			  . qq{$other_workers, i))) FROM generate_series(1, 40) i}, 'other');
		enqueue_skus($node, map { sprintf("WC-$other_workers-%04d", $_) } 1 .. 3);
		my $other_run = sql("SELECT stockx_enrich_start($other_workers)", 'other');
		ok(poll_until(10, sub {
			sql('SELECT count(pid) FROM stockx_enrich_status', 'other') == $other_workers
		}), "$part: its workers are running");

		my ($rc, $out, $err) = $node->psql('postgres',
			"\\set VERBOSITY verbose\nSELECT stockx_enrich_start(2);");
		if ($rc == 0)
		{
			like($err, qr/WARNING:/, "$part: start(2) succeeds only with a WARNING") or diag($err);
			$seen{$out} = 1 if $out =~ /^\d+$/;
		}
		else
		{
			like($err, qr/ERROR:  53400:/, "$part: start(2) fails with SQLSTATE 53400")
			  or diag($err);
			like($err, qr/HINT:  \S/, "$part: and a HINT");
		}
		ok(poll_until(5, sub { pid_null_rows('postgres') == 0 }),
			"$part: no slot with pid NULL lingers in the test database");
		note_seen();

		sql('SELECT stockx_enrich_stop()', 'other');
		ok(poll_until(10, sub { sql('SELECT count(*) FROM stockx_enrich_status', 'other') == 0 }),
			"$part: the other run stopped");
		check_recovers($part);
	}
}

$node->stop;
done_testing();
