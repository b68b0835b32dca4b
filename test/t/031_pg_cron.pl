# Scheduling with pg_cron: a job that fires SELECT stockx_enrich_start(2)
# every minute starts a run, and a firing while that run is still active
# starts no second run (stockx_enrich_start returns the active run's id).
#
# The run is made to last about 75 s (50 new products, 150 requests at 2
# requests/s), so that it spans at least one minute boundary after the
# firing that started it.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StockxTest;

# pg_cron is part of the test set-up (test/install_deps.sh installs it for
# the server pg_config names): missing, it is a failure, not a skip
my $cron_so = `pg_config --pkglibdir 2>/dev/null`;
chomp $cron_so;
if (!ok(-e "$cron_so/pg_cron.so", "pg_cron is installed in $cron_so"))
{
	done_testing();
	exit 1;
}

my $node = stockx_node('cron', requests_per_second => 2);
admin_reset();

# pg_cron connects through libpq: to the cluster's unix socket directory.
my $host = $node->host;
$node->append_conf('postgresql.conf', join('',
	"shared_preload_libraries = 'stockx_enrich,pg_cron'\n",
	"cron.database_name = 'postgres'\n",
	"cron.host = '$host'\n"));
$node->restart;

sub sql { return $node->safe_psql('postgres', $_[0]); }

is(sql('SHOW shared_preload_libraries'), 'stockx_enrich,pg_cron', 'both libraries preloaded');
sql('CREATE EXTENSION pg_cron');
my $user = sql('SELECT current_user');
is($node->safe_psql('postgres', 'SELECT 1', extra_params => [ '-h', $host, '-U', $user ]),
	1, "the job user $user can connect through cron.host");

my @skus = map { sprintf('CR%04d-%03d', 6000 + $_, $_) } 1 .. 50;
my $array = join(',', map { "'$_'" } @skus);
is(sql("SELECT stockx_enrich_enqueue(ARRAY[$array])"), 50, '50 SKUs queued');

# ---------------------------------------------------------------- schedule
my $t_sched = time();
my $jobid = sql(q{SELECT cron.schedule('stockx', '* * * * *', 'SELECT stockx_enrich_start(2)')});
like($jobid, qr/^\d+$/, "job scheduled (jobid $jobid)");

# the first firing happens at the next minute boundary
my $run_id = '';
while (time() - $t_sched < 70)
{
	$run_id = sql('SELECT max(run_id) FROM stockx_run');
	last if $run_id ne '';
	usleep(500_000);
}
my $t_first = time() - $t_sched;
ok($run_id ne '', sprintf('a stockx_run row appears %.1f s after scheduling (within 70 s)', $t_first))
  or BAIL_OUT('pg_cron never started a run; see the server log');

is(wait_run($node, $run_id, 150), 'done', "run $run_id, started by pg_cron, ends done");

# the next firing after the end finds nothing due (the queue is empty):
# it succeeds, starts nothing and adds no run row, so pg_cron every minute
# does not add 1,440 rows a day
my $end = sql("SELECT extract(epoch FROM finished_at) FROM stockx_run WHERE run_id = $run_id");
ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM cron.job_run_details WHERE jobid = $jobid "
		  . "AND status = 'succeeded' AND start_time > to_timestamp($end)", 't'),
	'a firing after the end of the run succeeded');
is(sql("SELECT count(*) FROM stockx_run WHERE run_id > $run_id"), 0,
	'and, with nothing due, added no stockx_run row');
like(sql("SELECT string_agg(return_message, ',') FROM cron.job_run_details WHERE jobid = $jobid "
		  . "AND start_time > to_timestamp($end)"), qr/^(1 row|SELECT 1)(,(1 row|SELECT 1))*$/,
	'its return message is one row (the NULL run id), no error');

# the firing at the boundary during the run may still be recording: let it finish
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM cron.job_run_details WHERE jobid = $jobid AND status IN ('starting', 'running')")
  or diag('a firing is still running');
sql(q{SELECT cron.unschedule('stockx')});

my ($started, $finished, $span_minutes, $processed, $enriched) = split /\|/, sql(
	"SELECT extract(epoch FROM started_at), extract(epoch FROM finished_at),
	        extract(epoch FROM date_trunc('minute', finished_at) - date_trunc('minute', started_at)) / 60,
	        processed, enriched
	   FROM stockx_run WHERE run_id = $run_id");
is("$processed|$enriched", '50|50', 'the run enriched all 50 products');
note sprintf('run lasted %.1f s', $finished - $started);
cmp_ok($span_minutes, '>=', 1, 'the run spans at least one minute boundary');

my $details = sql(
	"SELECT string_agg(format('%s %s %s', runid, status, to_char(start_time AT TIME ZONE 'UTC', 'HH24:MI:SS.MS')), '; ' ORDER BY start_time)
	   FROM cron.job_run_details WHERE jobid = $jobid");
note "job_run_details: $details";

# firings between the one that started the run and the end of the run
my $fired_during = sql(
	"SELECT count(*) FROM cron.job_run_details
	  WHERE jobid = $jobid AND status = 'succeeded'
	    AND start_time >= to_timestamp($started) - interval '5 seconds'
	    AND start_time <= to_timestamp($finished)");
cmp_ok($fired_during, '>=', 2,
	"$fired_during succeeded firings from the start of the run to its end");
is(sql(
	"SELECT count(*) >= 1 FROM cron.job_run_details
	  WHERE jobid = $jobid AND status = 'succeeded'
	    AND start_time > to_timestamp($started) AND start_time < to_timestamp($finished)"),
	't', 'at least one of them fired while the run was active');
is(sql(
	"SELECT count(*) FROM stockx_run
	  WHERE started_at >= (SELECT min(start_time) FROM cron.job_run_details WHERE jobid = $jobid) - interval '1 second'
	    AND started_at <= to_timestamp($finished)"),
	1, 'yet only one stockx_run row exists for that time span');
is(sql('SELECT count(*) FROM cron.job_run_details WHERE jobid = ' . $jobid . q{ AND status <> 'succeeded'}),
	0, 'no firing failed');


my $log = slurp_file($node->logfile);
my @cron_lines = grep { /cron job $jobid/ } split /\n/, $log;
note scalar(@cron_lines) . ' pg_cron log lines';

$node->stop;
done_testing();
