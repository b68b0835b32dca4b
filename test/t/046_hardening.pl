# Hardening, one subtest per defect of the landed code:
#
#  (a) Defect: a start by a NOLOGIN role returned a run id, then its workers
#      failed to connect and left an unfinished stockx_run row.
#      Expected: the call fails with an ERROR of SQLSTATE 42501 that
#      mentions login; nothing runs and no stockx_run row stays unfinished.
#  (b) Defect: any http:// token URL was accepted, so the refresh token and
#      client secret could travel in clear text.
#      Expected: ALTER SYSTEM SET stockx_enrich.token_url to an http:// URL
#      fails with SQLSTATE 22023 unless its host is loopback (127.0.0.1,
#      localhost, [::1]); https:// is accepted; look-alike hosts
#      (127.0.0.1.example.com, localhost.example.com) are refused.
#  (c) Defect: secrets were not checked for CR and LF, which libcurl would
#      send as extra header lines.
#      Expected: ALTER SYSTEM SET of api_key, client_secret, refresh_token
#      or access_token to a value with CR LF, or CR alone, fails with
#      SQLSTATE 22023.  (PostgreSQL itself refuses a newline in ALTER
#      SYSTEM; CR alone reaches the extension.)
#  (d) Defect: the workers took default_transaction_isolation from the
#      database and statement_timeout / lock_timeout from the role.
#      Expected: with the database at serializable and the starting role at
#      statement_timeout = lock_timeout = 1ms, a run ends 'done' with every
#      row enriched, although a session holds the run's stockx_run row for
#      3 s while the workers want to write their counters.
#  (e) Defect: SPI row counts were not checked; a BEFORE trigger returning
#      NULL on stockx_run made the worker read a row that was not there
#      (the server crashed).
#      Expected: with a trigger that suppresses updates of one leased SKU,
#      and with a trigger that suppresses every write to stockx_run, the
#      server does not crash (no 'terminated by signal' in the log, same
#      postmaster, SELECT 1 works), the run ends (its workers leave) and,
#      with the stockx_product trigger, the other SKUs are enriched.
#  (f) Defect: the counters of a commit were added before the commit
#      happened; a commit refused by a deferred constraint trigger errored
#      the worker and left counters for rows that were rolled back.
#      Expected: afterwards stockx_run's processed / enriched / failed equal
#      the rows of the run in stockx_product; the refused SKU is 'failed'
#      with last_error holding the trigger's message; the others enriched.
#  (g) Defect: a reload with a broken credentials file (group-readable, or
#      a syntax error) errored the running worker.
#      Expected: the worker keeps the previous credentials, the log has a
#      WARNING saying so, and the run ends 'done' (tokens expired at the
#      stand-in meanwhile, so the kept secrets are used for a refresh).
#  (h) Defect: an unknown key of the credentials file was echoed in the
#      error.
#      Expected: a line without '=' and a line with an unknown key make
#      start fail with an ERROR, and neither the error nor the server log
#      shows the line's text.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time sleep);
use StockxTest;

my $node = stockx_node('hardening', requests_per_second => 50);
# a crashing worker must not take the whole test down: let the postmaster
# reinitialise after a crash (the test then sees 'terminated by signal')
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
$node->restart;
admin_reset();

sub sql { my ($q, $db) = @_; return $node->safe_psql($db // 'postgres', $q); }

# Like sql, but undef instead of dying when the query or the server fails.
sub try_sql
{
	my ($q, $db) = @_;
	my ($rc, $out) = eval { $node->psql($db // 'postgres', $q) };
	return defined $rc && $rc == 0 ? $out : undef;
}

# A new database with the extension.
sub fresh_db
{
	my ($db) = @_;
	sql("CREATE DATABASE $db");
	sql('CREATE EXTENSION stockx_enrich', $db);
}

sub queue
{
	my ($db, @skus) = @_;
	return sql('SELECT stockx_enrich_enqueue(ARRAY[' . join(',', map { "'$_'" } @skus) . '])', $db);
}

sub grant_worker_role
{
	my ($role, $db) = @_;
	sql(qq{GRANT EXECUTE ON FUNCTION stockx_enrich_start(int, bigint) TO $role;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO $role;
		GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO $role}, $db);
}

sub postmaster_pid
{
	my ($first) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	return $first;
}

# ---------------------------------------------------------------- (a)
{
	fresh_db('ha');
	sql('CREATE ROLE sx_nologin NOLOGIN');
	grant_worker_role('sx_nologin', 'ha');
	queue('ha', 'HA-0001', 'HA-0002');
	my ($rc, $out, $err) = $node->psql('ha',
		"\\set VERBOSITY verbose\nSET ROLE sx_nologin;\nSELECT stockx_enrich_start();");
	ok($rc != 0, '(a) start as a NOLOGIN role fails in the call') or diag("returned $out");
	like($err, qr/ERROR:  42501:.*login/i, '(a) with SQLSTATE 42501, mentioning login')
	  or diag($err);
	ok(poll_until(5, sub {
		sql(q{SELECT (SELECT count(*) FROM stockx_enrich_status)
		           + (SELECT count(*) FROM stockx_run WHERE finished_at IS NULL)}, 'ha') == 0 }),
		'(a) nothing runs and no stockx_run row is left unfinished');
}

# ---------------------------------------------------------------- (b)
{
	my %verdict = (
		'http://example.com/oauth/token' => 'refused',
		'http://127.0.0.1:9/x' => 'accepted',
		'http://localhost:9/x' => 'accepted',
		'http://[::1]:9/x' => 'accepted',
		'https://example.com/x' => 'accepted',
		'http://127.0.0.1.example.com/x' => 'refused',
		'http://localhost.example.com/x' => 'refused');
	for my $url (sort keys %verdict)
	{
		my ($rc, $out, $err) = $node->psql('postgres',
			"\\set VERBOSITY verbose\nALTER SYSTEM SET stockx_enrich.token_url = '$url';");
		if ($verdict{$url} eq 'refused')
		{
			like($err, qr/ERROR:  22023:/, "(b) token_url $url is refused with SQLSTATE 22023");
		}
		else
		{
			is($rc, 0, "(b) token_url $url is accepted") or diag($err);
		}
	}
	sql('ALTER SYSTEM RESET stockx_enrich.token_url');
}

# ---------------------------------------------------------------- (c)
{
	for my $n (qw(api_key client_secret refresh_token access_token))
	{
		for my $value ([ q{E'abc\r\nX-Evil: 1'}, 'CR LF' ], [ q{E'abc\rX-Evil: 1'}, 'CR' ])
		{
			my ($rc, $out, $err) = $node->psql('postgres',
				"\\set VERBOSITY verbose\nALTER SYSTEM SET stockx_enrich.$n = $value->[0];");
			like($err, qr/ERROR:  22023:/,
				"(c) $n with $value->[1] in the value is refused with SQLSTATE 22023");
			sql("ALTER SYSTEM RESET stockx_enrich.$n");
		}
	}
}

# ---------------------------------------------------------------- (d)
{
	fresh_db('hd');
	sql(q{ALTER DATABASE hd SET default_transaction_isolation = 'serializable';
		CREATE ROLE sx_pinned LOGIN;
		ALTER ROLE sx_pinned SET statement_timeout = '1ms';
		ALTER ROLE sx_pinned SET lock_timeout = '1ms'});
	grant_worker_role('sx_pinned', 'hd');
	my @skus = map { sprintf('HD-%04d', $_) } 1 .. 12;
	queue('hd', @skus);
	admin_reset();
	# 150 ms per request: each worker's first commit (5 rows, 15 requests)
	# comes about 2.2 s after the start, while the row below is held
	admin_config({ latency_ms => 150 });
	my $run;
	{
		local $ENV{PGOPTIONS} = '-c statement_timeout=0 -c lock_timeout=0';
		my ($rc, $out, $err) = $node->psql('hd',
			"SET statement_timeout = 0;\nSET lock_timeout = 0;\nSELECT stockx_enrich_start(2);",
			extra_params => [ '-U', 'sx_pinned' ]);
		$run = $out;
		like($run, qr/^\d+$/, '(d) the role with 1ms timeouts starts a run') or diag($err);
	}
	$run = 0 unless $run =~ /^\d+$/;
	ok(poll_until(10, sub { sql("SELECT count(*) FROM stockx_run WHERE run_id = $run", 'hd') == 1 }),
		"(d) the run's stockx_run row exists");
	# another session updates the run's row and keeps it for 2 s: a write
	# waits 500 ms for a lock (the worker's lock_timeout, not the role's
	# 1 ms) and is tried 4 times 0.1, 0.2 and 0.3 s apart, 2.6 s in all,
	# so it outlasts the block even when it starts with it (the worker
	# with 2 of the 12 rows writes them well before the others' 2.2 s)
	my $blocker = $node->background_psql('hd');
	$blocker->query_safe("BEGIN; UPDATE stockx_run SET workers = workers WHERE run_id = $run");
	sleep(2);
	$blocker->query_safe('COMMIT');
	$blocker->quit;
	is(wait_run_in('hd', $run, 60), 'done', '(d) the run ends done');
	is(sql(q{SELECT count(*) FROM stockx_product WHERE status = 'enriched'}, 'hd'),
		scalar(@skus), '(d) every row is enriched');
	admin_config({ latency_ms => 0 });
}

sub wait_run_in
{
	my ($db, $run, $timeout_s) = @_;
	my ($rc, $out, $err) = $node->psql($db,
		sprintf('SELECT stockx_enrich_wait(%d, %d)', $run, $timeout_s * 1000));
	return $rc == 0 ? $out : "error: $err";
}

# ---------------------------------------------------------------- (e)
{
	my $pm = postmaster_pid();
	my $offset = -s $node->logfile;

	# (e1) updates of HE-0002 are suppressed while it is leased
	fresh_db('he1');
	sql(q{
		CREATE FUNCTION he_freeze() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.sku = 'HE-0002' AND OLD.lease_pid IS NOT NULL THEN
				RETURN NULL;
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER he_freeze BEFORE UPDATE ON stockx_product
			FOR EACH ROW EXECUTE FUNCTION he_freeze();
	}, 'he1');
	queue('he1', map { sprintf('HE-%04d', $_) } 1 .. 4);
	my ($rc, $run, $err) = $node->psql('he1', 'SELECT stockx_enrich_start()');
	$run //= '';
	if ($rc == 0 && $run =~ /^\d+$/)
	{
		my $reason = wait_run_in('he1', $run, 60);
		ok(defined $reason && $reason =~ /^[a-z_]+$/,
			"(e1) with a stockx_product trigger returning NULL the run ends ($reason)");
	}
	else
	{
		pass("(e1) start refused: $err");
	}
	ok(poll_until(10, sub { sql('SELECT count(*) FROM stockx_enrich_status', 'he1') == 0 }),
		'(e1) its workers are gone');
	is(sql(q{SELECT string_agg(status, ',' ORDER BY sku) FROM stockx_product WHERE sku <> 'HE-0002'}, 'he1'),
		'enriched,enriched,enriched', '(e1) the other SKUs are enriched');

	# (e2) every write to stockx_run is suppressed
	fresh_db('he2');
	sql(q{
		CREATE FUNCTION he_void() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RETURN NULL; END $$;
		CREATE TRIGGER he_void BEFORE INSERT OR UPDATE ON stockx_run
			FOR EACH ROW EXECUTE FUNCTION he_void();
	}, 'he2');
	queue('he2', map { sprintf('HE-%04d', $_) } 5 .. 8);
	($rc, $run, $err) = $node->psql('he2', 'SELECT stockx_enrich_start()');
	$run //= '';
	note $rc == 0 ? "(e2) start returned run $run" : "(e2) start refused: $err";
	ok(poll_until(60, sub {
		my $n = try_sql('SELECT count(*) FROM stockx_enrich_status', 'he2');
		return defined $n && $n eq '0';
	}), '(e2) with a stockx_run trigger returning NULL the workers leave');

	ok(poll_until(20, sub { (try_sql('SELECT 1') // '') eq '1' }), '(e) SELECT 1 works');
	is(postmaster_pid(), $pm, '(e) the postmaster is the same');
	my $log = slurp_file($node->logfile, $offset);
	ok($log !~ /terminated by signal/, '(e) no process was terminated by a signal')
	  or diag(join("\n", grep { /terminated by signal/ } split /\n/, $log));
}

# ---------------------------------------------------------------- (f)
{
	fresh_db('hf');
	sql(q{
		CREATE FUNCTION hf_rule() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.sku = 'HF-0003' AND NEW.status = 'enriched' THEN
				RAISE EXCEPTION 'catalogue rule HF-7 refuses %', NEW.sku;
			END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER hf_rule AFTER INSERT OR UPDATE ON stockx_product
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hf_rule();
	}, 'hf');
	# 6 rows, commit_every 5: HF-0003 is in the first commit
	queue('hf', map { sprintf('HF-%04d', $_) } 1 .. 6);
	my $run = sql('SELECT stockx_enrich_start(1)', 'hf');
	my $reason = wait_run_in('hf', $run, 60);
	ok(defined $reason && $reason =~ /^[a-z_]+$/, "(f) the run ends ($reason)");
	is(sql(qq{SELECT r.processed || '/' || r.enriched || '/' || r.failed
		FROM stockx_run r WHERE run_id = $run}, 'hf'),
		sql(q{SELECT count(*) FILTER (WHERE status <> 'pending') || '/'
			|| count(*) FILTER (WHERE status = 'enriched') || '/'
			|| count(*) FILTER (WHERE status = 'failed') FROM stockx_product}, 'hf'),
		"(f) stockx_run's processed/enriched/failed equal the rows in stockx_product");
	is(sql(q{SELECT status FROM stockx_product WHERE sku = 'HF-0003'}, 'hf'), 'failed',
		'(f) the SKU the commit refused is failed');
	like(sql(q{SELECT last_error FROM stockx_product WHERE sku = 'HF-0003'}, 'hf'),
		qr/catalogue rule HF-7 refuses HF-0003/, "(f) with the trigger's message in last_error");
	is(sql(q{SELECT count(*) FROM stockx_product WHERE sku <> 'HF-0003' AND status = 'enriched'}, 'hf'),
		5, '(f) the other 5 SKUs are enriched');
}
$node->stop;

# ---------------------------------------------------------------- (g), (h)
my $cnode = stockx_node('hardening_cred', requests_per_second => 50, batch_size => 2,
	api_key => "''", client_id => "''", client_secret => "''", refresh_token => "''");
my $file = $cnode->data_dir . '/stockx_hard.credentials';
my $valid = "api_key = 'test-api-key'\nclient_id = 'test-client'\n"
  . "client_secret = 'test-secret'\nrefresh_token = 'test-refresh'\n";

sub write_credentials
{
	my ($mode, $text) = @_;
	open my $fh, '>', $file or die "$file: $!";
	print $fh $text;
	close $fh;
	chmod $mode, $file;
}

write_credentials(0600, $valid);
$cnode->append_conf('postgresql.conf', "stockx_enrich.credentials_file = '$file'\n");
$cnode->reload;

# The WARNING messages in a piece of server log, each with the DETAIL,
# HINT and CONTEXT lines that follow it.
sub warnings_in
{
	my ($log) = @_;
	return $log =~ /(WARNING:[^\n]*(?:\n[^\n]*\b(?:DETAIL|HINT|CONTEXT):[^\n]*)*)/g;
}

# (g) a slow run; the file breaks (how: $break->()) and the server reloads
sub broken_reload_run
{
	my ($label, $break) = @_;
	admin_reset();
	admin_config({ latency_ms => 250 });
	my @skus = map { sprintf("HG-$label-%04d", $_) } 1 .. 8;
	enqueue_skus($cnode, @skus);
	my $run = $cnode->safe_psql('postgres', 'SELECT stockx_enrich_start(1)');
	ok(poll_until(10, sub { admin_stats()->{api_total} >= 2 }), "(g) $label: the run is under way");
	my $offset = -s $cnode->logfile;
	$break->();
	$cnode->safe_psql('postgres', 'SELECT pg_reload_conf()');
	ok(poll_until(10, sub {
		grep { /keeping the previous credentials/ } warnings_in(slurp_file($cnode->logfile, $offset)) }),
		"(g) $label: the log has a WARNING: keeping the previous credentials");
	# the access token dies: the kept secrets must serve a refresh
	admin_config({ expire_tokens => JSON::PP::true });
	is(wait_run($cnode, $run, 60), 'done', "(g) $label: the run ends done");
	is($cnode->safe_psql('postgres',
			"SELECT count(*) FROM stockx_product WHERE status = 'enriched' AND sku LIKE 'HG-$label-%'"),
		scalar(@skus), "(g) $label: every row enriched");
	write_credentials(0600, $valid);
	$cnode->safe_psql('postgres', 'SELECT pg_reload_conf()');
}

broken_reload_run('mode', sub { chmod 0640, $file });
broken_reload_run('syntax', sub { write_credentials(0600, "s3cr3tGarbageLine\n") });

# (h) the file's text never shows in an error or the log
for my $case ([ 'a line without =', "s3cr3tNoEquals\n" ],
	[ 'an unknown key', "api_key = 'test-api-key'\ns3cr3tKey = x\n" ])
{
	write_credentials(0600, $case->[1]);
	$cnode->safe_psql('postgres', 'SELECT pg_reload_conf()');
	sleep(0.5);
	enqueue_skus($cnode, 'HH-0001');
	my ($rc, $out, $err) = $cnode->psql('postgres', 'SELECT stockx_enrich_start()');
	ok($rc != 0 && $err =~ /ERROR:/, "(h) $case->[0]: start fails with an ERROR");
	ok(index($err, 's3cr3t') < 0, "(h) $case->[0]: the error does not show the line's text")
	  or diag('error: ' . ($err =~ s/s3cr3t\w*/<line text>/gr));
	$cnode->safe_psql('postgres', 'SELECT stockx_enrich_stop()') if $rc == 0;
}
my @lines = grep { /s3cr3t/ } split /\n/, slurp_file($cnode->logfile);
ok(!@lines, '(g, h) the server log never shows the text of a credentials file line')
  or diag(join("\n", map { s/s3cr3t\w*/<line text>/gr } @lines));

$cnode->stop;
done_testing();
