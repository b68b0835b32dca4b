# Secrets from stockx_enrich.credentials_file: used by the workers, refused
# when group- or world-readable, re-read on reload, and never logged.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('creds',
	api_key => "''", client_id => "''", client_secret => "''", refresh_token => "''");
admin_reset();
my $file = $node->data_dir . '/stockx.credentials';

$node->safe_psql('postgres', "SELECT stockx_enrich_enqueue(ARRAY['FZ5897-001', 'GW2871'])");
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT stockx_enrich_start()');
like($err, qr/StockX credentials are not configured.*\n.*DETAIL:  Missing: stockx_enrich.api_key/s,
	'without any secret, start refuses and names the missing setting');

sub write_file
{
	my ($mode, $text) = @_;
	open my $fh, '>', $file or die $!;
	print $fh $text;
	close $fh;
	chmod $mode, $file;
}

write_file(0600, "# StockX secrets\napi_key = 'test-api-key'\nclient_id = test-client\n"
	  . "client_secret = 'test-secret'\nrefresh_token = test-refresh\n");
$node->append_conf('postgresql.conf', "stockx_enrich.credentials_file = '$file'\n");
$node->reload;

my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start()');
is(wait_run($node, $run, 60), 'done', 'a run with secrets from the file finishes');
is($node->safe_psql('postgres', "SELECT string_agg(status, ',' ORDER BY sku) FROM stockx_product"),
	'enriched,enriched', 'both products enriched through the file\'s credentials');
cmp_ok(scalar(grep { $_->{endpoint} eq 'token' } @{ admin_log() }), '>=', 1,
	'the workers refreshed a token with the file\'s refresh token');

chmod 0644, $file;
($ret, $out, $err) = $node->psql('postgres', 'SELECT stockx_enrich_start()');
like($err, qr/credentials file ".*" is accessible by group or others.*HINT:  .*chmod 600/s,
	'a group- or world-readable file is refused with a hint');

write_file(0600, "api_key = 'test-api-key'\npassword = 'hunter2-secret'\n");
($ret, $out, $err) = $node->psql('postgres', 'SELECT stockx_enrich_start()');
like($err, qr/unknown key in stockx_enrich credentials file ".*" line 2/,
	'an unknown key is reported by its line');
unlike($err, qr/hunter2/, 'the error does not show the value');
unlike($err, qr/password/, 'nor the key: a line of the file may well be a secret');

# rotating the file and reloading logs nothing of it
write_file(0600, "api_key = 'test-api-key'\nclient_id = 'test-client'\n"
	  . "client_secret = 'test-secret'\nrefresh_token = 'test-refresh'\naccess_token = 'rotated-token-xyz'\n");
$node->reload;
$node->safe_psql('postgres', "SELECT stockx_enrich_enqueue(ARRAY['HQ4540'])");
$run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start()');
is(wait_run($node, $run, 60), 'done', 'a run after rotating the file finishes');
is($node->safe_psql('postgres', "SELECT status FROM stockx_product WHERE sku = 'HQ4540'"),
	'enriched', 'the refused access token was replaced by a refreshed one');

my $log = slurp_file($node->logfile);
for my $secret ('test-api-key', 'test-secret', 'test-refresh', 'rotated-token-xyz', 'hunter2')
{
	unlike($log, qr/\Q$secret\E/, "server log never shows $secret");
}
$node->stop;
done_testing();
