# From install to the first real request (issue 18, item 8): a superuser
# logs the account in through OAuth's authorization-code flow in SQL.
#
#  (a) stockx_enrich_authorize_url() refuses without a credentials file
#      (55000, hint) and a redirect URI that is not https:// (or http:// to
#      a loopback address) or has a fragment (22023); stockx_enrich.
#      authorize_url is checked like token_url;
#  (b) the URL carries every parameter, each percent-encoded: response_type
#      code, the client id, the redirect URI (with its own query), scope
#      "offline_access openid", audience gateway.stockx.com and a state of
#      64 hex digits, another for every URL; stockx_oauth_state keeps its
#      SHA-256, never the state;
#  (c) the stand-in's /authorize (the browser after the login) redirects to
#      the redirect URI with a code and the state;
#  (d) a wrong state, an expired state and a wrong code each give their
#      SQLSTATE and hint, make no token request (the state errors) and
#      change nothing: no refresh token in the file, the state still good;
#      a token endpoint that does not answer ends the call at
#      statement_timeout (57014), else after request_timeout_ms (08006),
#      and the same code and state still work afterwards;
#  (e) the code is redeemed: the credentials file (mode 600, its other
#      lines kept) holds the new refresh token, the result names the file,
#      the scope and when the shared access token expires, and shows no
#      token;
#  (f) the reused state, the reused code and an expired code each give
#      their SQLSTATE and hint and change nothing;
#  (g) a run enriches a product on the login's access token (no token
#      request); with the stand-in's tokens expired, the next run refreshes
#      with the file's refresh token (the only one the server has) and
#      enriches;
#  (h) a role that is not superuser cannot execute either function (42501),
#      even when granted EXECUTE (the C check);
#  (i) the server log shows no refresh token, client secret, code or state,
#      also where a failed call was logged with its ERROR.
use strict;
use warnings;

use HTTP::Tiny;
use IO::Socket::INET;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use StockxTest;

my $port = standin_start();
admin_reset();
my $node = stockx_node('oauth_code',
	api_key => "''", client_id => "''", client_secret => "''", refresh_token => "''",
	authorize_url => "'http://127.0.0.1:$port/authorize'",
	request_timeout_ms => 4000);
my $file = $node->data_dir . '/stockx.credentials';
my $base = "http://127.0.0.1:$port/authorize";
# a redirect URI with a query of its own: '?', '&', '=' and '%' must be encoded
my $redirect = "http://127.0.0.1:$port/callback?shop=A%26B&lang=de";
my $browser = HTTP::Tiny->new(max_redirect => 0, timeout => 10);

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub url_for
{
	my ($uri) = @_;
	return sql("SELECT stockx_enrich_authorize_url('$uri')");
}

sub redeem_error
{
	my ($code, $state) = @_;
	return sql_error($node, "SELECT * FROM stockx_enrich_redeem_code('$code', '$state')");
}

sub decode_pct
{
	my ($s) = @_;
	$s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
	return $s;
}

# the query of a URL: (raw pairs, decoded hash)
sub query_of
{
	my ($url) = @_;
	my (undef, $q) = split /\?/, $url, 2;
	my @raw = split /&/, $q // '';
	my %p = map { my ($k, $v) = split /=/, $_, 2; (decode_pct($k) => decode_pct($v // '')) } @raw;
	return (\@raw, \%p);
}

# open the URL as the browser would after the login: (code, state) of the redirect
sub log_in
{
	my ($url) = @_;
	my $r = $browser->get($url);
	is($r->{status}, 302, 'the login page redirects');
	my $location = $r->{headers}{location} // '';
	like($location, qr/^\Q$redirect\E&/, 'to the redirect URI (its own query kept)');
	my (undef, $p) = query_of($location);
	return ($p->{code}, $p->{state});
}

sub file_text { return -e $file ? slurp_file($file) : ''; }

sub token_requests { return admin_stats()->{token_total}; }

sub state_used
{
	my ($state) = @_;
	return sql("SELECT used_at IS NOT NULL FROM stockx_oauth_state "
		  . "WHERE state_hash = sha256(convert_to('$state', 'UTF8'))");
}

# ---------------------------------------------------------------- (a)
like(sql_error($node, "SELECT stockx_enrich_authorize_url('$redirect')"),
	qr/^55000 Create a file only the server's user can read \(chmod 600\)/,
	'(a) no credentials file: 55000 with a hint how to make one');

open my $fh, '>', $file or die "$file: $!";
print $fh "# StockX\napi_key = 'test-api-key'\nclient_id = test-client\nclient_secret = 'test-secret'";
close $fh;
chmod 0600, $file;
my $owner = (stat $file)[4];
$node->append_conf('postgresql.conf', "stockx_enrich.credentials_file = '$file'\n");
$node->reload;

for my $bad ('ftp://127.0.0.1/cb', 'http://shop.example/cb', "https://shop.example/cb#top", '')
{
	like(sql_error($node, "SELECT stockx_enrich_authorize_url('$bad')"), qr/^22023 /,
		"(a) redirect URI '$bad' refused (22023)");
}
my ($rc, $out, $err) = $node->psql('postgres',
	"ALTER SYSTEM SET stockx_enrich.authorize_url = 'http://accounts.example/authorize'");
like($err, qr/http:\/\/ is allowed for loopback addresses only/,
	'(a) authorize_url: http:// to another host is refused, as for token_url');

# ---------------------------------------------------------------- (b)
my $url = url_for($redirect);
like($url, qr/^\Q$base\E\?/, '(b) the URL is stockx_enrich.authorize_url with a query');
my ($raw, $p) = query_of($url);
is(join(',', sort keys %$p), 'audience,client_id,redirect_uri,response_type,scope,state',
	'(b) every parameter, once');
is(scalar(@$raw), 6, '(b) six parameters');
ok(!grep({ !/^[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~%-]+$/ } @$raw),
	'(b) every value percent-encoded (no raw space, &, =, ?, /, :)');
is($p->{response_type}, 'code', '(b) response_type=code');
is($p->{client_id}, 'test-client', '(b) the client id of the credentials file');
is($p->{redirect_uri}, $redirect, '(b) the redirect URI, decoded, is the one given');
like($url, qr/[?&]redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A$port%2Fcallback%3Fshop%3DA%2526B%26lang%3Dde(&|$)/,
	'(b) the redirect URI is encoded, its own % too');
like($url, qr/[?&]scope=offline_access%20openid(&|$)/, '(b) scope "offline_access openid"');
is($p->{audience}, 'gateway.stockx.com', '(b) audience gateway.stockx.com');
like($p->{state}, qr/^[0-9a-f]{64}$/, '(b) a state of 64 hex digits');
my $state = $p->{state};
my (undef, $p2) = query_of(url_for($redirect));
isnt($p2->{state}, $state, '(b) each URL has a state of its own');
is(sql("SELECT count(*) FROM stockx_oauth_state WHERE state_hash = sha256(convert_to('$state', 'UTF8'))"),
	1, '(b) the state is remembered by its SHA-256');
is(sql("SELECT count(*) FROM stockx_oauth_state s WHERE s::text LIKE '%$state%' "
	  . "OR encode(s.state_hash, 'hex') = '$state'"),
	0, '(b) but not in clear');
is(sql("SELECT min(expires_at - created_at) FROM stockx_oauth_state"), '00:10:00',
	'(b) a state is good for 10 minutes');

# ---------------------------------------------------------------- (c)
my ($code, $back) = log_in($url);
like($code // '', qr/^[A-Za-z0-9_-]{20,}$/, '(c) the browser comes back with a code');
is($back, $state, '(c) and the state of the URL');

# ---------------------------------------------------------------- (d)
my $tokens0 = token_requests();
my $other = '0' x 64;
is(redeem_error($code, $other),
	"22023 Pass the state parameter of the redirect unchanged; if in doubt, make a new URL with "
	  . "stockx_enrich_authorize_url() and log in again.",
	'(d) a wrong state: 22023 and a hint');

my $url2 = url_for($redirect);
my ($code2, $state2) = log_in($url2);
sql("UPDATE stockx_oauth_state SET expires_at = clock_timestamp() - interval '1 second' "
	  . "WHERE state_hash = sha256(convert_to('$state2', 'UTF8'))");
is(redeem_error($code2, $state2),
	'55000 Make a new URL with stockx_enrich_authorize_url(), log in, and redeem the code at once.',
	'(d) an expired state: 55000 and a hint');
is(token_requests(), $tokens0, '(d) no token request for a wrong or expired state');
is(admin_stats()->{codes_redeemed}, 0, '(d) nor any code spent');

like(redeem_error('not-the-code', $state),
	qr/^28000 A code is good once, for a few minutes, with the redirect URI it was issued for/,
	'(d) a wrong code: 28000 (StockX refused it) and a hint');
is(token_requests(), $tokens0 + 1, '(d) the wrong code went to the token endpoint');
unlike(file_text(), qr/refresh_token/, '(d) the file has no refresh token after the failures');
is(state_used($state), 'f', '(d) and the state is still good');

# a token endpoint that never answers: statement_timeout, then request_timeout_ms
{
	my $dead = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 0,
		Proto => 'tcp') or die "listen: $!";
	my $dead_url = 'http://127.0.0.1:' . $dead->sockport . '/oauth/token';
	sql("ALTER SYSTEM SET stockx_enrich.token_url = '$dead_url'");
	sql('SELECT pg_reload_conf()');
	poll_until(10, sub { sql('SHOW stockx_enrich.token_url') eq $dead_url })
	  or die 'reload not seen';
	my $t0 = time();
	($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSET statement_timeout = '500ms';\n"
		  . "SELECT * FROM stockx_enrich_redeem_code('$code', '$state')");
	like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
		'(d) statement_timeout ends a redeem that waits on the token endpoint');
	cmp_ok(time() - $t0, '<', 3.5, '(d) at the timeout, not after request_timeout_ms (4 s)');
	$t0 = time();
	like(redeem_error($code, $state),
		qr/^08006 Check stockx_enrich.token_url and the network, then redeem the same code and state again/,
		'(d) without it, request_timeout_ms ends it: 08006 and a hint');
	cmp_ok(time() - $t0, '<', 12, '(d) within the request timeout');
	sql('ALTER SYSTEM RESET stockx_enrich.token_url');
	sql('SELECT pg_reload_conf()');
	poll_until(10, sub { sql('SHOW stockx_enrich.token_url') ne $dead_url })
	  or die 'reload not seen';
	close $dead;
}
is(state_used($state), 'f', '(d) the state is still good after the timeouts');

# ---------------------------------------------------------------- (e)
($rc, $out, $err) = $node->psql('postgres',
	"SELECT credentials_file, scope, access_token_expires_at > now() + interval '11 hours' "
	  . "FROM stockx_enrich_redeem_code('$code', '$state')");
is($rc, 0, '(e) the code is redeemed') or diag($err);
is($out, "$file|offline_access openid|t",
	'(e) the result: the file written, the scope granted, the access token good for 12 hours');
my $text = file_text();
my ($refresh) = $text =~ /^refresh_token = '([0-9a-f]{48})'$/m;
ok(defined $refresh, '(e) the file holds the new refresh token');
like($text, qr/\A# StockX\napi_key = 'test-api-key'\nclient_id = test-client\nclient_secret = 'test-secret'\nrefresh_token = /,
	'(e) its other lines are kept, the last one still a line of its own');
is(sprintf('%04o', (stat $file)[2] & 07777), '0600', '(e) the file has mode 0600');
is((stat $file)[4], $owner, '(e) and the same owner');
unlike($out, qr/\Q$refresh\E/, '(e) the result shows no token');
is(state_used($state), 't', '(e) the state is used');
is(admin_stats()->{codes_redeemed}, 1, '(e) the stand-in redeemed one code');

# ---------------------------------------------------------------- (f)
my $tokens1 = token_requests();
is(redeem_error($code, $state),
	'55000 The refresh token of that login is in stockx_enrich.credentials_file. To log in again, '
	  . 'make a new URL with stockx_enrich_authorize_url().',
	'(f) the reused state: 55000 and a hint');
is(token_requests(), $tokens1, '(f) no token request for it');
# once more outside a handler, so that its ERROR is logged (checked in (i))
($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM stockx_enrich_redeem_code('$code', '$state')");
like($err, qr/the OAuth state was used already/, '(f) the error says the state was used');

my (undef, $p3) = query_of(url_for($redirect));
my $state3 = $p3->{state};
like(redeem_error($code, $state3), qr/^28000 A code is good once/,
	'(f) the reused code (with a new state): 28000 and a hint');
is(state_used($state3), 'f', '(f) that state is still good');

my ($code4, $state4) = log_in(url_for($redirect));
admin_config({ expire_codes => JSON::PP::true });
like(redeem_error($code4, $state4), qr/^28000 A code is good once/,
	'(f) an expired code: 28000 and a hint');
is(file_text(), $text, '(f) the file is unchanged by the failures');

# ---------------------------------------------------------------- (g)
my $tokens2 = token_requests();
enqueue_skus($node, 'DD1391-100');
my $run = sql('SELECT stockx_enrich_start()');
is(wait_run($node, $run, 60), 'done', '(g) a run after the login ends done');
is(sql("SELECT status FROM stockx_product WHERE sku = 'DD1391-100'"), 'enriched',
	'(g) and enriches the product');
is(token_requests(), $tokens2, "(g) on the login's access token: no token request");

admin_config({ expire_tokens => JSON::PP::true });
my $t_expired = admin_stats()->{now_t};
enqueue_skus($node, 'CW2288-111');
$run = sql('SELECT stockx_enrich_start()');
is(wait_run($node, $run, 60), 'done', '(g) a run after the tokens expired ends done');
is(sql("SELECT status FROM stockx_product WHERE sku = 'CW2288-111'"), 'enriched',
	'(g) and enriches its product');
my @refreshes = grep { $_->{endpoint} eq 'token' && $_->{t} >= $t_expired } @{ admin_log() };
ok(@refreshes && $refreshes[-1]{status} == 200,
	"(g) the workers refreshed with the file's refresh token (stand-in answered 200)");

# ---------------------------------------------------------------- (h)
sql('CREATE ROLE shop LOGIN');
for my $call ("stockx_enrich_authorize_url('$redirect')", "stockx_enrich_redeem_code('x', 'y')")
{
	my ($name) = $call =~ /^(\w+)/;
	($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT $call",
		extra_params => [ '-U', 'shop' ]);
	like($err, qr/ERROR:  42501: permission denied for function $name/,
		"(h) a role that is not superuser cannot execute $name");
}
sql('GRANT EXECUTE ON FUNCTION stockx_enrich_authorize_url(text), '
	  . 'stockx_enrich_redeem_code(text, text) TO shop');
for my $call ("stockx_enrich_authorize_url('$redirect')", "stockx_enrich_redeem_code('x', 'y')")
{
	my ($name) = $call =~ /^(\w+)/;
	($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT $call",
		extra_params => [ '-U', 'shop' ]);
	like($err, qr/ERROR:  42501: only a superuser may call $name\(\)/,
		"(h) nor when granted EXECUTE: $name checks superuser() itself");
}
is(sql('SELECT count(*) FROM stockx_oauth_state'), 5, '(h) the refused calls remembered no state');

# ---------------------------------------------------------------- (i)
my $log = slurp_file($node->logfile);
like($log, qr/ERROR:  the OAuth state was used already/, '(i) the failed call was logged');
my %secret = ('the refresh token' => $refresh, 'the client secret' => 'test-secret',
	'the code' => $code, 'the second code' => $code2, 'the fourth code' => $code4,
	'the state' => $state, 'the expired state' => $state2);
for my $what (sort keys %secret)
{
	unlike($log, qr/\Q$secret{$what}\E/, "(i) the server log never shows $what");
}
$node->stop;
done_testing();
