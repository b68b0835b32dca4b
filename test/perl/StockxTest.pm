# StockxTest: shared helpers of the TAP tests.
#
# Starts the bundled StockX stand-in on 127.0.0.1 (a free port), builds a
# PostgreSQL::Test::Cluster that preloads stockx_enrich and points it at the
# stand-in, and wraps the stand-in's admin API (config, log, stats, expect).
#
# Every stand-in a TAP file starts (through standin_start or by itself)
# records each /v2 answer it gives in $ENV{STOCKX_STANDIN_ANSWERS}, which
# this module sets, unless it is set already, to tmp_check/standin_answers
# (standin_answers_dir() says where); t/990_contract.pl checks them all
# against the API's schemas.
package StockxTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename ();
use File::Spec;
use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(usleep time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(standin_start standin_stop admin_config admin_reset admin_log
  admin_stats expect_product stockx_node wait_run api_requests min_gap
  standin_url json_decode_utf8 enqueue_skus poll_until num_eq extreme_amount sql_error
  standin_answers_dir);

my $json = JSON::PP->new->utf8->canonical;
my $http = HTTP::Tiny->new(timeout => 30);
my ($standin_pid, $standin_port);

sub json_decode_utf8 { return $json->decode($_[0]); }

# Where the stand-ins record their answers (STOCKX_STANDIN_ANSWERS): the TAP
# suite's tmp_check/standin_answers unless the environment says otherwise.
# Set in INIT, after PostgreSQL::Test::Utils's INIT has set tmp_check, so
# that a stand-in a test file starts by itself inherits it too.
sub standin_answers_dir
{
	$ENV{STOCKX_STANDIN_ANSWERS} //=
	  "${PostgreSQL::Test::Utils::tmp_check}/standin_answers";
	return $ENV{STOCKX_STANDIN_ANSWERS};
}

INIT { standin_answers_dir(); }

# Start the stand-in once per test file; returns its port.
sub standin_start
{
	return $standin_port if $standin_port;
	# next to this module: test/perl/../standin
	my $script = $ENV{STOCKX_STANDIN}
	  // File::Spec->catfile(File::Basename::dirname(__FILE__), '..', 'standin', 'stockx_standin.py');
	my $port_file = "${PostgreSQL::Test::Utils::tmp_check}/standin.$$.port";
	unlink $port_file;
	standin_answers_dir();
	$standin_pid = fork();
	die "fork: $!" unless defined $standin_pid;
	if ($standin_pid == 0)
	{
		exec('python3', $script, '--port', '0', '--port-file', $port_file)
		  or die "exec: $!";
	}
	for (1 .. 100)
	{
		last if -s $port_file;
		usleep(100_000);
	}
	die "stand-in did not start" unless -s $port_file;
	$standin_port = slurp_file($port_file);
	chomp $standin_port;
	note "StockX stand-in on 127.0.0.1:$standin_port";
	return $standin_port;
}

sub standin_stop
{
	if ($standin_pid)
	{
		kill 'TERM', $standin_pid;
		waitpid($standin_pid, 0);
		$standin_pid = undef;
		$standin_port = undef;
	}
}

END { standin_stop(); }

sub standin_url { return "http://127.0.0.1:$standin_port"; }

sub _admin
{
	my ($method, $path, $body) = @_;
	my $res = $http->request($method, standin_url() . $path,
		$body ? { content => $json->encode($body),
				  headers => { 'content-type' => 'application/json' } } : {});
	die "stand-in $method $path: $res->{status} $res->{content}" unless $res->{success};
	return $json->decode($res->{content});
}

sub admin_config { return _admin('POST', '/_admin/config', $_[0]); }
sub admin_reset  { return _admin('POST', '/_admin/reset', {}); }
sub admin_log    { return _admin('GET', '/_admin/log')->{requests}; }
sub admin_stats  { return _admin('GET', '/_admin/stats'); }

sub expect_product
{
	my ($sku, $currency) = @_;
	my $q = $sku;
	utf8::encode($q) if utf8::is_utf8($q);
	$q =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord($1))/ge;
	$q .= "&currencyCode=$currency" if defined $currency;
	return _admin('GET', "/_admin/expect?sku=$q");
}

# API requests (not token calls) in the stand-in's log.
sub api_requests
{
	return [ grep { $_->{endpoint} ne 'token' } @{ admin_log() } ];
}

# Smallest gap in seconds between consecutive API requests.
sub min_gap
{
	my ($reqs) = @_;
	my $min;
	for my $i (1 .. $#$reqs)
	{
		my $gap = $reqs->[$i]{t} - $reqs->[ $i - 1 ]{t};
		$min = $gap if !defined $min || $gap < $min;
	}
	return $min;
}

# A started cluster that preloads stockx_enrich, talks to the stand-in, and
# has the extension installed in database postgres.  %conf overrides
# stockx_enrich.* settings (names without the prefix).
sub stockx_node
{
	my ($name, %conf) = @_;
	my $port = standin_start();
	my %settings = (
		api_base_url => "'http://127.0.0.1:$port/v2'",
		token_url => "'http://127.0.0.1:$port/oauth/token'",
		api_key => "'test-api-key'",
		client_id => "'test-client'",
		client_secret => "'test-secret'",
		refresh_token => "'test-refresh'",
		requests_per_second => 20,
		backoff_base_ms => 50,
		backoff_max_ms => 500,
		request_timeout_ms => 5000,
		%conf);
	my $node = PostgreSQL::Test::Cluster->new($name);
	# UTF8 without a locale, whatever the machine's locale is (a minimal
	# container has none).
	$node->init(extra => [ '--encoding=UTF8', '--no-locale' ]);
	$node->append_conf('postgresql.conf',
		join('', "shared_preload_libraries = 'stockx_enrich'\n",
			"max_worker_processes = 16\n",
			"log_statement = none\n",
			map { "stockx_enrich.$_ = $settings{$_}\n" } sort keys %settings));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION stockx_enrich');
	return $node;
}

# "SQLSTATE hint" of the error statement $q raises in database postgres
# ('no error' if none), through a function test_error() made on first use.
sub sql_error
{
	my ($node, $q) = @_;
	$node->safe_psql('postgres', q{
CREATE OR REPLACE FUNCTION pg_temp.test_error(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
	hint text;
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, hint = PG_EXCEPTION_HINT;
	RETURN state || ' ' || coalesce(hint, '');
END
$$;
SELECT pg_temp.test_error($q$} . $q . q{$q$)});
}

# Queue SKUs through stockx_enrich_enqueue; returns how many were new.
sub enqueue_skus
{
	my ($node, @skus) = @_;
	my $array = join(',', map { my $s = $_; $s =~ s/'/''/g; "'$s'" } @skus);
	return $node->safe_psql('postgres', "SELECT stockx_enrich_enqueue(ARRAY[$array])");
}

# Poll $cond every 50 ms until it returns true or $timeout_s passes.
sub poll_until
{
	my ($timeout_s, $cond) = @_;
	my $end = time() + $timeout_s;
	while (time() < $end)
	{
		my $v = $cond->();
		return $v if $v;
		usleep(50_000);
	}
	return undef;
}

# Numeric equality where both sides may be NULL (undef).
sub num_eq
{
	my ($got, $want) = @_;
	return !defined $got && !defined $want if !defined $got || !defined $want;
	return $got == $want;
}

# The amount under $key that $better prefers over all others (min or max),
# ignoring nulls, across the stand-in's market data entries.
sub extreme_amount
{
	my ($market, $key, $better) = @_;
	my @v = grep { defined } map { $_->{$key} } @$market;
	return undef unless @v;
	my $best = shift @v;
	for (@v) { $best = $_ if $better->($_, $best); }
	return $best;
}

# Wait for a run to end; returns its stop_reason.
sub wait_run
{
	my ($node, $run_id, $timeout_s) = @_;
	$timeout_s //= 300;
	my $ms = $timeout_s * 1000;
	return $node->safe_psql('postgres', "SELECT stockx_enrich_wait($run_id, $ms)");
}

1;
