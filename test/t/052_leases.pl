# Leases: a worker keeps the rows it works on, and never writes a row whose
# lease it lost.
#
# Defect pinned: the landed lease is a fixed hour (no setting), a worker
# never renews it, and the store writes a row's results with
# "UPDATE ... WHERE sku = $1" whoever holds the row by then.  A worker that
# waits longer than the lease (429 pauses, slow answers) can have its rows
# claimed by another worker and done twice, and a row whose lease was taken
# away is overwritten anyway.
#
# Behaviour now expected (setting stockx_enrich.lease_timeout, default one
# hour; '2s' here):
# 1. Two workers, and a forced 429 with Retry-After: 6 in the middle of the
#    run, so every worker waits three times longer than the lease: no
#    product is requested twice (at the stand-in, per SKU: one search; per
#    found product: one variants and one market-data request answered 200;
#    the single 429 on top), every row ends enriched or not_found, the run
#    ends 'done', and no log line says "lost the lease".
# 2. While the worker waits on a slow answer (latency 3 s) for a SKU, the
#    test gives that row's lease to another live backend (a psql session
#    kept open) for an hour, and makes the row due only in an hour: the
#    worker does not write that row (status pending, no title, no product
#    id, no variants, the lease as the test set it), logs
#    'lost the lease of SKU "<sku>"', still writes the other row of its
#    batch, and the run ends 'done'.
# On the landed code case 1 passes (its lease is an hour; the setting is
# unknown to it) and case 2 fails: the row is written as enriched and no such
# line is logged.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use StockxTest;

my $node = stockx_node('leases_timeout', requests_per_second => 20, lease_timeout => "'2s'");
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

# ---------------------------------------------------------------- case 1: a pause longer than the lease
my @found = map { sprintf('LE%04d-%03d', 5200 + $_, $_) } 1 .. 27;
my @missing = map { "NF-LE$_" } 1 .. 3;
enqueue_skus($node, @found, @missing);
my %pid_of = map { $_ => lc expect_product($_)->{product}{productId} } @found;

my $run1 = sql('SELECT stockx_enrich_start(2)');
# mid-run: the next variants request gets 429 with Retry-After: 6
ok(poll_until(30, sub { admin_stats()->{api_total} >= 15 }), 'case 1: the run is under way');
admin_config({ fail_next => [ { status => 429, count => 1, endpoint => 'variants', retry_after => '6' } ] });
is(wait_run($node, $run1, 90), 'done', 'case 1: the run ends done');

my $reqs = api_requests();
my @r429 = grep { $_->{status} == 429 } @$reqs;
is(scalar @r429, 1, 'case 1: one request was answered 429');
my $after;
($after) = grep { $_->{t} > $r429[0]{t} } @$reqs if @r429;
cmp_ok($after ? $after->{t} - $r429[0]{t} : 0, '>=', 5.0,
	'case 1: the next request came at least 5 s after the 429 (the 2 s leases expired meanwhile)');

my %seen;
for my $r (grep { $_->{status} == 200 } @$reqs)
{
	if ($r->{endpoint} eq 'search')
	{
		my ($q) = $r->{query} =~ /(?:^|&)query=([^&]*)/;
		$seen{"search $q"}++;
	}
	elsif ($r->{path} =~ m{/products/([^/]+)/}) { $seen{"$r->{endpoint} " . lc $1}++; }
}
my %want = ((map { ("search $_" => 1) } @found, @missing),
	(map { ("variants $pid_of{$_}" => 1, "market $pid_of{$_}" => 1) } @found));
is_deeply(\%seen, \%want,
	'case 1: no product requested twice: one search per SKU, one variants and one market-data answer per found product');
is(scalar @$reqs, 3 * @found + @missing + 1, 'case 1: ' . (3 * @found + @missing + 1) . ' API requests in all');
is(sql(q{SELECT string_agg(DISTINCT status || '/' || coalesce(lease_pid::text, '-'), ',') FROM stockx_product WHERE sku LIKE 'LE%'}),
	'enriched/-', 'case 1: every found SKU enriched, no lease left');
is(sql(q{SELECT string_agg(DISTINCT status, ',') FROM stockx_product WHERE sku LIKE 'NF-LE%'}),
	'not_found', 'case 1: the unknown SKUs are not_found');
is(sql("SELECT concat_ws('|', processed, enriched, not_found, failed) FROM stockx_run WHERE run_id = $run1"),
	join('|', @found + @missing, scalar @found, scalar @missing, 0), 'case 1: stockx_run counts each SKU once');
unlike(slurp_file($node->logfile), qr/lost the lease/, 'case 1: no worker lost a lease');

# ---------------------------------------------------------------- case 2: the lease is taken away
admin_reset();
my ($stolen, $other) = ('LS-STOLEN-52', 'LS-OTHER-52');
# two statements: the stolen SKU is created (and claimed) first
enqueue_skus($node, $stolen);
enqueue_skus($node, $other);
my $holder = $node->background_psql('postgres');
my $holder_pid = $holder->query_safe('SELECT pg_backend_pid()');
admin_config({ latency_ms => 3000 });
my $log_offset = -s $node->logfile;

my $run2 = sql('SELECT stockx_enrich_start(1)');
ok(poll_until(20, sub {
	grep { $_->{endpoint} eq 'search' && $_->{query} =~ /query=\Q$stolen\E(?:&|$)/ } @{ admin_log() }
}), "case 2: the worker's search for $stolen is under way (3 s latency)");
sql("UPDATE stockx_product SET lease_pid = $holder_pid, lease_until = now() + interval '1 hour', "
	  . "next_attempt_at = now() + interval '1 hour' WHERE sku = '$stolen'");
admin_config({ latency_ms => 0 });
is(wait_run($node, $run2, 60), 'done', 'case 2: the run ends done');

is(sql("SELECT concat_ws('|', status, attempts, coalesce(title, '-'), coalesce(stockx_product_id::text, '-'), "
		  . "coalesce(lease_pid::text, '-'), coalesce((lease_until > now() + interval '50 minutes')::text, '-'), "
		  . "coalesce(last_error, '-'), (SELECT count(*) FROM stockx_variant v WHERE v.sku = p.sku)) "
		  . "FROM stockx_product p WHERE sku = '$stolen'"),
	"pending|0|-|-|$holder_pid|true|-|0",
	"case 2: the worker did not write $stolen, whose lease it lost: the row is as the test left it");
like(substr(slurp_file($node->logfile), $log_offset), qr/lost the lease of SKU "\Q$stolen\E"/,
	'case 2: the worker logs that it lost the lease');
is(sql("SELECT status FROM stockx_product WHERE sku = '$other'"), 'enriched',
	"case 2: $other of the same batch is enriched");
$holder->quit;

$node->stop;
done_testing();
