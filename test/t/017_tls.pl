# TLS peer verification is on: a StockX endpoint with a certificate nobody
# vouches for gets no request, and the row records why.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use StockxTest;

my $dir = $PostgreSQL::Test::Utils::tmp_check;
my ($cert, $key) = ("$dir/standin_tls.crt", "$dir/standin_tls.key");
system_or_bail('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
	'-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
	'-keyout', $key, '-out', $cert);

my $port_file = "$dir/standin_tls.port";
unlink $port_file;
my $pid = fork();
if ($pid == 0)
{
	exec('python3', $ENV{STOCKX_STANDIN} // "$ENV{TESTDIR}/standin/stockx_standin.py",
		'--port', '0', '--port-file', $port_file, '--tls-cert', $cert, '--tls-key', $key);
	die "exec: $!";
}
usleep(100_000) for grep { !-s $port_file } 1 .. 100;
my $port = slurp_file($port_file);
chomp $port;

my $node = stockx_node('tls',
	api_base_url => "'https://127.0.0.1:$port/v2'",
	token_url => "'https://127.0.0.1:$port/oauth/token'",
	access_token => "'test-access-token'",
	max_retries => 1, max_attempts => 1);
enqueue_skus($node, 'DD1391-100');
my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start()');
is(wait_run($node, $run, 60), 'done', 'the run ends');
my ($status, $error) = split /\|/, $node->safe_psql('postgres',
	"SELECT status, last_error FROM stockx_product WHERE sku = 'DD1391-100'");
is($status, 'failed', 'the row is not enriched from an unverified server');
like($error, qr/certificate/i, "last_error says why: $error");
is($node->safe_psql('postgres', 'SELECT count(*) FROM stockx_variant'), 0, 'nothing was stored');

kill 'TERM', $pid;
waitpid($pid, 0);
$node->stop;
done_testing();
