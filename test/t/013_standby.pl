# Refusals with clear errors: a hot standby refuses to start workers, and a
# server without the library preloaded refuses everything that needs it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1, extra => [ '--encoding=UTF8', '--no-locale' ]);
$primary->append_conf('postgresql.conf', join('',
	"shared_preload_libraries = 'stockx_enrich'\n",
	"stockx_enrich.api_key = 'test-api-key'\n",
	"stockx_enrich.access_token = 'test-access-token'\n",
	"stockx_enrich.api_base_url = 'http://127.0.0.1:9/v2'\n"));
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION stockx_enrich');
$primary->safe_psql('postgres', "SELECT stockx_enrich_enqueue(ARRAY['DD1391-100'])");
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

my ($ret, $out, $err) = $standby->psql('postgres', 'SELECT stockx_enrich_start()');
like($err, qr/ERROR:  cannot start stockx_enrich workers during recovery\nHINT:  Run stockx_enrich_start\(\) on the primary server\./,
	'a hot standby refuses to start a run, and says where to run it');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM stockx_enrich_status'),
	0, 'the standby still answers the status view');
is($standby->safe_psql('postgres', "SELECT status FROM stockx_product"),
	'pending', 'the standby reads the replicated queue');
$standby->stop;

# without shared_preload_libraries
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init(extra => [ '--encoding=UTF8', '--no-locale' ]);
$plain->start;
($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION stockx_enrich');
like($err, qr/stockx_enrich must be loaded via shared_preload_libraries.*HINT:  Add stockx_enrich to shared_preload_libraries/s,
	'CREATE EXTENSION without the preloaded library fails with a hint');
($ret, $out, $err) = $plain->psql('postgres', "LOAD 'stockx_enrich'");
like($err, qr/must be loaded via shared_preload_libraries/, 'so does LOAD');
$plain->stop;
$primary->stop;
done_testing();
