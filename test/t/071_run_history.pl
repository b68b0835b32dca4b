# Run history that does not grow without bound.
#
# (a) stockx_enrich_start() with nothing due starts no worker and adds no
#     stockx_run row: it returns NULL (a schedule that fires every minute
#     adds nothing while there is nothing to do).
# (b) stockx_enrich.run_retention (default 30 days): a run deletes the rows
#     of runs that finished longer ago than that; 0 keeps them all.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('run_history');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# (a)
is(sql('SELECT stockx_enrich_start() IS NULL'), 't', '(a) an empty queue: start returns NULL');
is(sql('SELECT count(*) FROM stockx_run'), 0, '(a) no stockx_run row');
is(sql('SELECT count(*) FROM stockx_enrich_status'), 0, '(a) no worker');
sql(q{SELECT stockx_enrich_enqueue(ARRAY['RH-0001'])});
sql(q{UPDATE stockx_product SET next_attempt_at = now() + interval '1 hour'});
is(sql('SELECT stockx_enrich_start() IS NULL'), 't',
	'(a) a row not due before next_attempt_at: start returns NULL too');
is(sql('SELECT count(*) FROM stockx_run'), 0, '(a) still no stockx_run row');

# (b)
sql(q{
	INSERT INTO stockx_run (run_id, started_at, finished_at, stop_reason)
	VALUES (-40, now() - interval '40 days', now() - interval '40 days', 'done'),
	       (-10, now() - interval '10 days', now() - interval '10 days', 'done');
	UPDATE stockx_product SET next_attempt_at = NULL;
});
my $run = sql('SELECT stockx_enrich_start()');
like($run, qr/^\d+$/, '(b) a row due: start returns a run id');
is(wait_run($node, $run, 60), 'done', '(b) the run ends done');
is(sql('SELECT string_agg(run_id::text, \',\' ORDER BY run_id) FROM stockx_run'), "-10,$run",
	'(b) the run 40 days old is gone, the one 10 days old and the new one stay');

$node->append_conf('postgresql.conf', "stockx_enrich.run_retention = 0\n");
$node->reload;
sql(q{INSERT INTO stockx_run (run_id, started_at, finished_at, stop_reason)
	  VALUES (-400, now() - interval '400 days', now() - interval '400 days', 'done')});
sql(q{SELECT stockx_enrich_enqueue(ARRAY['RH-0002'])});
$run = sql('SELECT stockx_enrich_start()');
is(wait_run($node, $run, 60), 'done', '(b) with run_retention = 0 a run ends done');
is(sql('SELECT count(*) FROM stockx_run WHERE run_id = -400'), 1, '(b) and keeps every run');

$node->stop;
done_testing();
