# Defect: when StockX rotates the refresh token (each refresh answers a new
# refresh_token and invalidates the old one) the worker kept the new token
# in its own memory only: the next run's workers refreshed with the old,
# invalidated token and ended with 'credentials'; every worker refreshed on
# its own, so concurrent workers invalidated each other's tokens; nothing
# was persisted, and nothing told the operator.
#
# Expected now (stand-in with rotate_refresh_token: true):
#  (a) secrets in stockx_enrich.credentials_file (mode 0600, owned by the
#      server's user): three runs in a row end 'done'; after a server restart
#      a fourth run ends 'done'; the file then holds a refresh token other
#      than the original, still has mode 0600 and the same owner, and the
#      stand-in accepts the refresh token the file holds (checked last, by
#      one token request of the test itself);
#  (b) tokens are refreshed once for the cluster: a run of 3 workers whose
#      tokens the stand-in expires mid-run ends 'done', and the stand-in sees
#      at least 1 and at most 2 token requests after the expiry (not one per
#      worker);
#  (c) secrets in postgresql.conf (no credentials file): runs 1, 2 and 3 in
#      the same server life end 'done', and the server log has a WARNING
#      saying StockX rotated the refresh token and that it could not be
#      persisted;
#  and no refresh token (original or rotated) ever reaches the server log.
use strict;
use warnings;

use HTTP::Tiny;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time sleep);
use StockxTest;

standin_start();
admin_reset();

# rotated refresh tokens of the stand-in are 48 hex digits, access tokens 64
my $token_shape = qr/\b(?:[0-9a-f]{48}|[0-9a-f]{64})\b/;

sub run_once
{
	my ($node, $label, $workers, @skus) = @_;
	enqueue_skus($node, @skus);
	my $run = $node->safe_psql('postgres', "SELECT stockx_enrich_start($workers)");
	is(wait_run($node, $run, 60), 'done', "$label ends done");
	is($node->safe_psql('postgres', "SELECT count(*) FROM stockx_product WHERE status <> 'enriched'"),
		0, "$label: every row enriched");
	return $run;
}

sub token_requests_since
{
	my ($t0) = @_;
	return scalar grep { $_->{endpoint} eq 'token' && $_->{t} >= $t0 } @{ admin_log() };
}

# ---------------------------------------------------------------- (a), (b)
my $node = stockx_node('rotation_file',
	api_key => "''", client_id => "''", client_secret => "''", refresh_token => "''");
my $file = $node->data_dir . '/stockx_rotation.credentials';
{
	open my $fh, '>', $file or die "$file: $!";
	print $fh "api_key = 'test-api-key'\nclient_id = 'test-client'\n"
	  . "client_secret = 'test-secret'\nrefresh_token = 'test-refresh'\n";
	close $fh;
	chmod 0600, $file;
}
my $owner = (stat $file)[4];
$node->append_conf('postgresql.conf', "stockx_enrich.credentials_file = '$file'\n");
$node->restart;
admin_config({ rotate_refresh_token => JSON::PP::true });

# The refresh token the file holds (never printed).
sub file_refresh_token
{
	my $text = slurp_file($file);
	my ($tok) = $text =~ /^\s*refresh_token\s*=\s*'?([^'\s#]+)'?/m;
	return $tok // '';
}

for my $i (1 .. 3)
{
	run_once($node, "(a) run $i on the credentials file", 1, "RA$i-0001", "RA$i-0002");
}
$node->restart;
run_once($node, '(a) run 4, after a restart', 1, 'RA4-0001', 'RA4-0002');

ok(file_refresh_token() ne 'test-refresh' && file_refresh_token() ne '',
	'(a) the credentials file holds a new refresh token');
is(sprintf('%04o', (stat $file)[2] & 07777), '0600', '(a) the file still has mode 0600');
is((stat $file)[4], $owner, "(a) and the same owner");

# (b) three workers, tokens expired at the stand-in mid-run
{
	admin_config({ latency_ms => 100 });
	enqueue_skus($node, map { sprintf('RB-%04d', $_) } 1 .. 24);
	my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(3)');
	ok(poll_until(20, sub { admin_stats()->{api_total} >= 12 }), '(b) 3 workers under way');
	my $t0 = admin_stats()->{now_t};
	admin_config({ expire_tokens => JSON::PP::true });
	is(wait_run($node, $run, 60), 'done', '(b) the run ends done after the expiry');
	is($node->safe_psql('postgres', "SELECT count(*) FROM stockx_product WHERE status <> 'enriched'"),
		0, '(b) every row enriched');
	my $n = token_requests_since($t0);
	cmp_ok($n, '>=', 1, "(b) the expired token was refreshed ($n token requests)");
	cmp_ok($n, '<=', 2, "(b) at most 2 token requests for 3 workers after one expiry (saw $n)");
	admin_config({ latency_ms => 0 });
}
ok(file_refresh_token() ne 'test-refresh', '(b) the file still holds a rotated refresh token');
is(sprintf('%04o', (stat $file)[2] & 07777), '0600', '(b) with mode 0600');

my $log = slurp_file($node->logfile);
ok(index($log, 'test-refresh') < 0 && $log !~ $token_shape,
	'(a) no refresh token in the server log');
$node->stop;

# last: the stand-in accepts the refresh token of the file (this request
# rotates it once more, so nothing may use the file afterwards)
{
	my $res = HTTP::Tiny->new(timeout => 10)->post_form(standin_url() . '/oauth/token', {
		grant_type => 'refresh_token', client_id => 'test-client',
		client_secret => 'test-secret', audience => 'gateway.stockx.com',
		refresh_token => file_refresh_token() });
	is($res->{status}, 200, "(a) the file's refresh token is the stand-in's current one");
}

# ---------------------------------------------------------------- (c)
admin_reset();
admin_config({ rotate_refresh_token => JSON::PP::true });
my $conf_node = stockx_node('rotation_conf');
for my $i (1 .. 3)
{
	run_once($conf_node, "(c) run $i with the secrets in postgresql.conf", 1,
		"RC$i-0001", "RC$i-0002");
}
$log = slurp_file($conf_node->logfile);
# each WARNING with the DETAIL, HINT and CONTEXT lines that follow it
my ($warning) = grep { /rotated the refresh token/i }
  $log =~ /(WARNING:[^\n]*(?:\n[^\n]*\b(?:DETAIL|HINT|CONTEXT):[^\n]*)*)/g;
ok($warning, '(c) the server log has a WARNING that StockX rotated the refresh token');
like($warning // '', qr/not be persisted|could not persist/i,
	'(c) saying it could not be persisted');
ok(index($log, 'test-refresh') < 0 && $log !~ $token_shape,
	'(c) no refresh token in the server log');
$conf_node->stop;

done_testing();
