# Leases left behind by a worker that is gone (crash, kill) are taken over:
# at once when their pid is no live worker, or once they expired.  Rows not
# yet due are left alone.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('leases');
admin_reset();
enqueue_skus($node, 'LS-DEAD', 'LS-EXPIRED', 'LS-FREE', 'LS-LATER');
$node->safe_psql('postgres', q{
	UPDATE stockx_product SET lease_pid = 999999, lease_until = now() + interval '1 hour'
	 WHERE sku = 'LS-DEAD';
	UPDATE stockx_product SET lease_pid = pg_backend_pid(), lease_until = now() - interval '1 second'
	 WHERE sku = 'LS-EXPIRED';
	UPDATE stockx_product SET next_attempt_at = now() + interval '1 hour', attempts = 1
	 WHERE sku = 'LS-LATER';
});
my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(1)');
is(wait_run($node, $run, 60), 'done', 'the run ends done');
is($node->safe_psql('postgres',
		"SELECT string_agg(sku || '=' || status || '/' || coalesce(lease_pid::text, '-'), ',' ORDER BY sku) FROM stockx_product"),
	'LS-DEAD=enriched/-,LS-EXPIRED=enriched/-,LS-FREE=enriched/-,LS-LATER=pending/-',
	'leases of a dead pid and an expired lease are taken over; a row due later waits');
is(scalar(grep { $_->{endpoint} eq 'search' } @{ api_requests() }), 3,
	'three searches: the row due later cost nothing');
$node->stop;
done_testing();
