# No HTTP header injection through secrets or tokens.
#
# Defect pinned: the landed client builds "Authorization: Bearer <token>"
# and "x-api-key: <key>" with psprintf and hands them to libcurl unchecked.
# A token answer whose access_token holds "\r\n" (json-c decodes the
# escapes) therefore adds a header line of the server's choosing to every
# API request; an api_key with a carriage return in the credentials file is
# sent the same way (the file parser trims only the end of the line).
#
# Behaviour now expected:
# 1. Stand-in token_crlf: the token endpoint issues
#    "crlf-token-<hex>\r\nX-Injected: 1".  No API request reaches the
#    stand-in carrying an injected header (header_names never holds
#    "x-injected"); the run ends (any stop reason: rows stay pending or are
#    retried), the server is still up (SELECT 1 works), and no server log
#    line shows the token ("crlf-token-") or the injected header.
# 2. A credentials_file whose api_key value holds a carriage return in the
#    middle of the line is refused by stockx_enrich_start() with an ERROR
#    that does not show the value, and nothing is sent to the stand-in.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('header_injection', requests_per_second => 50, max_attempts => 2);
admin_reset();
admin_config({ token_crlf => JSON::PP::true });

sub sql { return $node->safe_psql('postgres', $_[0]); }

# ---------------------------------------------------------------- case 1: a token with CRLF
enqueue_skus($node, 'HI5501-100', 'HI5502-200', 'HI5503-300');
my $run = sql('SELECT stockx_enrich_start(1)');
my $reason = wait_run($node, $run, 60);
if ($reason eq '')
{
	note 'the run did not end within 60 s; stopping it';
	sql('SELECT stockx_enrich_stop(10000)');
	$reason = wait_run($node, $run, 20);
}
ok($reason ne '', "case 1: the run ends (stop_reason $reason)");

my $log = admin_log();
my @token_calls = grep { $_->{endpoint} eq 'token' } @$log;
cmp_ok(scalar @token_calls, '>=', 1, 'case 1: the worker asked for a token (and got one with CRLF)');
my @injected = grep { grep { $_ eq 'x-injected' } @{ $_->{header_names} } } @$log;
is(scalar @injected, 0, 'case 1: no request reached the stand-in with an injected header')
  or diag(join("\n", map { "$_->{method} $_->{path}: @{ $_->{header_names} }" } @injected[0 .. ($#injected > 4 ? 4 : $#injected)]));
is(sql('SELECT 1'), '1', 'case 1: the server is still up');
is(sql(q{SELECT count(*) FROM stockx_product WHERE status IN ('pending', 'failed')}), 3,
	'case 1: no row was enriched with the tainted token');
my $server_log = slurp_file($node->logfile);
unlike($server_log, qr/crlf-token-/, 'case 1: the server log never shows the token');
unlike($server_log, qr/X-Injected/i, 'case 1: nor the injected header');

# ---------------------------------------------------------------- case 2: CR in the api_key
admin_reset();
sql('SELECT stockx_enrich_requeue(\'failed\')');
my $file = $node->data_dir . '/stockx.credentials';
open my $fh, '>', $file or die "$file: $!";
print $fh "api_key = crsplit-left\rcrsplit-right\nclient_id = test-client\n"
  . "client_secret = test-secret\nrefresh_token = test-refresh\n";
close $fh;
chmod 0600, $file;
$node->append_conf('postgresql.conf', "stockx_enrich.credentials_file = '$file'\n");
$node->reload;
$node->poll_query_until('postgres', 'SHOW stockx_enrich.credentials_file', $file)
  or die 'credentials_file not reloaded';

my ($ret, $out, $err) = $node->psql('postgres', 'SELECT stockx_enrich_start(1)');
like($err, qr/ERROR:/, 'case 2: start refuses a credentials file whose api_key holds a carriage return');
unlike($err, qr/crsplit/, 'case 2: the error does not show the value');
if ($ret == 0 && $out =~ /^(\d+)$/)
{
	# the landed code starts a run: let it end before counting requests
	wait_run($node, $1, 30);
}
is(scalar @{ api_requests() }, 0, 'case 2: no API request was sent');
unlike(slurp_file($node->logfile), qr/crsplit/, 'case 2: the server log never shows the value');

$node->stop;
done_testing();
