# A worker that meets an error outside a single row (here: the run table
# refuses its counters) reports it, keeps nothing half-written, and still
# closes the run with stop_reason 'error'; the server stays up and the next
# run finishes the queue.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('worker_error');
admin_reset();
$node->safe_psql('postgres', q{
	CREATE FUNCTION refuse_counters() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.processed <> OLD.processed THEN
			RAISE EXCEPTION 'run counters are frozen for maintenance';
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER refuse_counters BEFORE UPDATE ON stockx_run
		FOR EACH ROW EXECUTE FUNCTION refuse_counters();
});
my @skus = map { sprintf('WE-%04d', $_) } 1 .. 7;
enqueue_skus($node, @skus);

my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(1)');
is(wait_run($node, $run, 60), 'error', 'the run ends with stop_reason error');
is($node->safe_psql('postgres',
		"SELECT finished_at IS NOT NULL FROM stockx_run WHERE run_id = $run"),
	't', 'and its stockx_run row is closed');
like(slurp_file($node->logfile), qr/ERROR:  run counters are frozen for maintenance/,
	'the error is in the server log');
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE status = 'pending') || '|' || count(*) FILTER (WHERE stockx_product_id IS NOT NULL) FROM stockx_product"),
	'7|0', 'the rolled-back commit left every row pending and unwritten');
is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_variant'),
	0, 'and no variant');
is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_enrich_status'),
	0, 'no worker is left behind');

$node->safe_psql('postgres', 'DROP TRIGGER refuse_counters ON stockx_run');
my $run2 = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(1)');
is(wait_run($node, $run2, 60), 'done', 'the next run ends done');
is($node->safe_psql('postgres', "SELECT count(*) FROM stockx_product WHERE status = 'enriched'"),
	7, 'and enriches the rows the failed run left');
$node->stop;
done_testing();
