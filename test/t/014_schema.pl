# The extension can live in a schema of its own: workers, functions and
# views find their tables there whatever the caller's search_path.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('schema');
admin_reset();
$node->safe_psql('postgres', q{
	DROP EXTENSION stockx_enrich;
	CREATE SCHEMA "Stock X";
	CREATE EXTENSION stockx_enrich SCHEMA "Stock X";
});
is($node->safe_psql('postgres',
		"SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		  . "WHERE c.relname = 'stockx_product'"),
	'Stock X', 'tables are created in the chosen schema');

# a caller whose search_path does not include the schema
$node->safe_psql('postgres', q{
	SET search_path = pg_catalog;
	SELECT "Stock X".stockx_enrich_enqueue(ARRAY['DD1391-100', 'NF-404']);
});
my $run = $node->safe_psql('postgres', 'SET search_path = pg_catalog; SELECT "Stock X".stockx_enrich_start()');
is($node->safe_psql('postgres', "SET search_path = pg_catalog; SELECT \"Stock X\".stockx_enrich_wait($run, 60000)"),
	'done', 'the run ends done');
is($node->safe_psql('postgres',
		q{SELECT string_agg(sku || '=' || status, ',' ORDER BY sku) FROM "Stock X".stockx_product}),
	'DD1391-100=enriched,NF-404=not_found', 'rows are enriched in that schema');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM "Stock X".stockx_variant}),
	'>', 0, 'variants are written there too');
is($node->safe_psql('postgres',
		q{SELECT requests_today > 0 FROM "Stock X".stockx_enrich_limiter}),
	't', 'the limiter view reads the quota table of that schema');
$node->stop;
done_testing();
