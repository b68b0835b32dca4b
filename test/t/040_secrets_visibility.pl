# Defect: the secret settings (api_key, client_secret, refresh_token,
# access_token) were masked only by a show hook, so members of pg_monitor and
# pg_read_all_settings read them in clear from pg_settings.reset_val (and
# from pg_show_all_settings()).
#
# Expected now: whether the secrets come from postgresql.conf at startup or
# from ALTER SYSTEM + pg_reload_conf(), no way of reading settings open to a
# member of pg_monitor, a member of pg_read_all_settings or a plain LOGIN
# role shows any of them: every column of pg_settings and
# pg_show_all_settings() for every stockx_enrich.% row, SHOW, SHOW ALL,
# current_setting(name [, true]), pg_file_settings and
# pg_show_all_file_settings() (permission denied is fine), and the
# extension's views.  A superuser still reads the real value with SHOW and
# current_setting().  Secrets that come from stockx_enrich.credentials_file
# never reach the server log, also when the file is rewritten and the
# configuration reloaded.
#
# Failures never print a secret: they name the setting and the column.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

# Distinct, recognisable values (none of them is what the stand-in accepts,
# except in the credentials file below).
my %conf_secret = (
	api_key => 'SxConfKeyQ7a1',
	client_secret => 'SxConfCliSecQ7b2',
	refresh_token => 'SxConfRefreshQ7c3',
	access_token => 'SxConfAccessQ7d4');
my %alter_secret = (
	api_key => 'SxAlterKeyW3e5',
	client_secret => 'SxAlterCliSecW3f6',
	refresh_token => 'SxAlterRefreshW3g7',
	access_token => 'SxAlterAccessW3h8');

my $node = stockx_node('secrets_vis',
	api_key => "'$conf_secret{api_key}'",
	client_secret => "'$conf_secret{client_secret}'",
	refresh_token => "'$conf_secret{refresh_token}'",
	access_token => "'$conf_secret{access_token}'");
admin_reset();

$node->safe_psql('postgres', q{
	CREATE ROLE sx_mon LOGIN IN ROLE pg_monitor;
	CREATE ROLE sx_ras LOGIN IN ROLE pg_read_all_settings;
	CREATE ROLE sx_plain LOGIN;
});
my %roles = (sx_mon => 'pg_monitor member', sx_ras => 'pg_read_all_settings member',
	sx_plain => 'plain LOGIN role');
my @secret_names = sort keys %conf_secret;

# Every way we know of to read a setting, as one SQL text each.
sub probes
{
	my @p = (
		[ 'pg_settings (every column, as JSON)' =>
			q{SELECT row_to_json(s) FROM pg_catalog.pg_settings s WHERE name LIKE 'stockx_enrich.%'} ],
		[ 'pg_show_all_settings() (every column, as JSON)' =>
			q{SELECT row_to_json(s) FROM pg_catalog.pg_show_all_settings() s WHERE name LIKE 'stockx_enrich.%'} ],
		[ 'SHOW ALL' => 'SHOW ALL' ],
		[ 'pg_file_settings' =>
			q{SELECT row_to_json(f) FROM pg_catalog.pg_file_settings f} ],
		[ 'pg_show_all_file_settings()' =>
			q{SELECT row_to_json(f) FROM pg_catalog.pg_show_all_file_settings() f} ],
		[ 'the extension views' =>
			q{SELECT row_to_json(v) FROM stockx_enrich_status v;
			  SELECT row_to_json(v) FROM stockx_enrich_limiter v;
			  SELECT row_to_json(v) FROM stockx_enrich_alerts v} ]);
	for my $n (@secret_names, 'client_id', 'credentials_file')
	{
		push @p, [ "SHOW stockx_enrich.$n" => "SHOW stockx_enrich.$n" ],
		  [ "current_setting('stockx_enrich.$n')" =>
			  "SELECT pg_catalog.current_setting('stockx_enrich.$n')" ],
		  [ "current_setting('stockx_enrich.$n', true)" =>
			  "SELECT pg_catalog.current_setting('stockx_enrich.$n', true)" ];
	}
	return @p;
}

# Names of the secrets (never their values) whose value occurs in $text;
# for JSON rows of pg_settings also the column that shows it.
sub leaks
{
	my ($text, $secrets) = @_;
	my @found;
	for my $label (sort keys %$secrets)
	{
		my $v = $secrets->{$label};
		next unless index($text, $v) >= 0;
		my @cols;
		for my $line (split /\n/, $text)
		{
			next unless index($line, $v) >= 0 && $line =~ /^\{/;
			my $row = eval { json_decode_utf8($line) } or next;
			push @cols, map { ($row->{name} // '?') . ".$_" }
			  grep { defined $row->{$_} && index($row->{$_}, $v) >= 0 } sort keys %$row;
		}
		push @found, $label . (@cols ? ' (in ' . join(', ', @cols) . ')' : '');
	}
	return @found;
}

# Run every probe as every non-superuser role; no output may hold a secret.
sub check_roles
{
	my ($phase, $secrets) = @_;
	for my $role (sort keys %roles)
	{
		for my $probe (probes())
		{
			my ($what, $sql) = @$probe;
			my ($rc, $out, $err) = $node->psql('postgres', $sql,
				extra_params => [ '-U', $role ]);
			my @l = leaks("$out\n$err", $secrets);
			ok(!@l, "$phase: $roles{$role} reads no secret through $what")
			  or diag('leaked: ' . join('; ', @l));
		}
	}
}

# The superuser reads the real values.
sub check_superuser
{
	my ($phase, $secrets) = @_;
	for my $n (@secret_names)
	{
		my $show = $node->safe_psql('postgres', "SHOW stockx_enrich.$n");
		ok($show eq $secrets->{$n}, "$phase: a superuser's SHOW stockx_enrich.$n gives the real value");
		my $cs = $node->safe_psql('postgres',
			"SELECT current_setting('stockx_enrich.$n')");
		ok($cs eq $secrets->{$n},
			"$phase: a superuser's current_setting('stockx_enrich.$n') gives the real value");
	}
}

# ---------------------------------------------------------------- phase 1
# secrets in postgresql.conf since the server started
check_superuser('postgresql.conf', \%conf_secret);
check_roles('postgresql.conf', \%conf_secret);

# ---------------------------------------------------------------- phase 2
# secrets changed with ALTER SYSTEM and pg_reload_conf()
for my $n (@secret_names)
{
	$node->safe_psql('postgres', "ALTER SYSTEM SET stockx_enrich.$n = '$alter_secret{$n}'");
}
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(poll_until(10, sub {
	$node->safe_psql('postgres', 'SHOW stockx_enrich.access_token') eq $alter_secret{access_token}
}), 'ALTER SYSTEM: the reload is in effect');
check_superuser('ALTER SYSTEM', \%alter_secret);
my %old_and_new = ((map { ("old $_" => $conf_secret{$_}) } @secret_names),
	(map { ("new $_" => $alter_secret{$_}) } @secret_names));
check_roles('ALTER SYSTEM', \%old_and_new);

# ---------------------------------------------------------------- phase 3
# secrets in stockx_enrich.credentials_file, rewritten and reloaded: they
# never reach the server log.  The file holds the stand-in's credentials and a
# distinct access token (refused, so the workers refresh it).
my $file = $node->data_dir . '/stockx_vis.credentials';
my %file_secret = (
	'file api_key' => 'test-api-key',
	'file client_secret' => 'test-secret',
	'file refresh_token' => 'test-refresh',
	'file access_token 1' => 'SxFileAccessE9k1',
	'file access_token 2' => 'SxFileAccessE9k2');

sub write_credentials
{
	my ($access) = @_;
	open my $fh, '>', $file or die "$file: $!";
	print $fh "api_key = 'test-api-key'\nclient_id = 'test-client'\n"
	  . "client_secret = 'test-secret'\nrefresh_token = 'test-refresh'\n"
	  . "access_token = '$access'\n";
	close $fh;
	chmod 0600, $file;
}

write_credentials($file_secret{'file access_token 1'});
$node->safe_psql('postgres', "ALTER SYSTEM SET stockx_enrich.credentials_file = '$file'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(poll_until(10, sub {
	$node->safe_psql('postgres', 'SHOW stockx_enrich.credentials_file') eq $file
}), 'credentials file: the reload is in effect');

enqueue_skus($node, 'VIS-0001');
my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start()');
is(wait_run($node, $run, 60), 'done', 'a run on the credentials file ends done');

# rewrite the file with another secret and reload while nothing runs, then
# once more during a run
write_credentials($file_secret{'file access_token 2'});
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
enqueue_skus($node, 'VIS-0002', 'VIS-0003');
admin_config({ latency_ms => 300 });
$run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start()');
ok(poll_until(10, sub { admin_stats()->{api_total} >= 4 }), 'second run under way');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
is(wait_run($node, $run, 60), 'done', 'the run after rewriting the file ends done');
admin_config({ latency_ms => 0 });

check_roles('credentials file', { %old_and_new, %file_secret });

my $log = slurp_file($node->logfile);
my @in_log = grep { index($log, $file_secret{$_}) >= 0 } sort keys %file_secret;
ok(!@in_log, 'the server log shows no secret of the credentials file')
  or diag('in the log: ' . join(', ', @in_log));

$node->stop;
done_testing();
