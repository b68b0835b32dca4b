# A row the database refuses to store does not cost the batch: it is marked
# failed with the database's reason, its variants are not half-written, and
# the other rows of the same commit are stored.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('row_refused');
admin_reset();

# the shop's own rule refuses one product at write time
$node->safe_psql('postgres', q{
	CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.status = 'enriched' AND NEW.sku = 'RR-BAD' THEN
			RAISE EXCEPTION 'brand % is not sold here', NEW.brand;
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER refuse_bad BEFORE UPDATE ON stockx_product
		FOR EACH ROW EXECUTE FUNCTION refuse_bad();
});

my @skus = ('RR-0001', 'RR-0002', 'RR-BAD', 'RR-0003', 'RR-0004');
enqueue_skus($node, @skus);
my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(1)');
is(wait_run($node, $run, 60), 'done', 'the run ends done despite the refused row');

is($node->safe_psql('postgres',
		"SELECT string_agg(sku || '=' || status, ',' ORDER BY sku) FROM stockx_product"),
	'RR-0001=enriched,RR-0002=enriched,RR-0003=enriched,RR-0004=enriched,RR-BAD=failed',
	'the four other rows of the same commit are enriched, the refused one failed');
like($node->safe_psql('postgres', "SELECT last_error FROM stockx_product WHERE sku = 'RR-BAD'"),
	qr/could not store the answer: brand .* is not sold here/,
	'last_error carries the database\'s reason');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM stockx_variant WHERE sku = 'RR-BAD'"),
	0, 'no variant of the refused row was kept');
is($node->safe_psql('postgres',
		"SELECT stockx_product_id IS NULL AND title IS NULL FROM stockx_product WHERE sku = 'RR-BAD'"),
	't', 'no product field of the refused row was kept');
is($node->safe_psql('postgres',
		"SELECT processed || '|' || enriched || '|' || failed FROM stockx_run WHERE run_id = $run"),
	'5|4|1', 'stockx_run counts 4 enriched and 1 failed');
like(slurp_file($node->logfile), qr/WARNING:  stockx_enrich: could not store SKU "RR-BAD"/,
	'the server log says which SKU could not be stored');

$node->stop;
done_testing();
