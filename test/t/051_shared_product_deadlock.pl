# Two SKUs that resolve to one StockX product, and lock conflicts on write.
#
# Defect pinned: the landed store writes every row in a subtransaction and
# marks the row 'failed' with whatever error the database raised, so a
# deadlock (40P01), a serialization failure (40001) or a lock timeout
# (55P03) while writing, which are temporary and say nothing about the SKU,
# fail a product for good.  Two SKUs that resolve to the same product share
# its variant rows (variant_id is unique), so two workers writing them at
# once, each in its own order, run into exactly that.
#
# Behaviour now expected: such temporary database errors never fail a row.
# The results are written again (without new StockX requests where
# possible): both SKUs end 'enriched' with attempts 0 and last_error NULL,
# no row is 'failed', each SKU costs at most 6 requests at the stand-in (a
# pair at most 12), and the run ends 'done'.
#
# Part A: 10 pairs (a MANY- target with 60 variants and an alias, stand-in
# alias_skus) enriched by 2 workers with batch_size 1 at 200 requests/s, so
# the two SKUs of a pair are written at about the same time; variants_order
# shuffle gives each answer its own order.  Deadlocks here depend on timing
# (the landed code loses a pair in some runs, not all).
# Part B (deterministic, 40P01): an external session locks the product's
# variant rows FOR UPDATE, waits until the worker writing the target blocks on
# one of them, then updates the target's stockx_product row, which the
# worker has already updated in its write transaction: a deadlock.  The
# workers' deadlock_timeout (200ms, shorter than a lock_timeout a worker may
# use for its writes) is much shorter than the session's (60s), and the
# session's wait starts within a few ms of the worker's, so the worker is
# the one whose deadlock check finds the cycle.  The landed code
# marks the target 'failed' ("could not store the answer: deadlock detected").
# Part C (deterministic, 55P03): the same lock, with lock_timeout = 1s for the
# cluster; the session holds the lock 1.5 s after the worker starts waiting,
# then commits.  The landed code marks the target 'failed' ("could
# not store the answer: canceling statement due to lock timeout").
# The request counts are taken at the stand-in: searches by query, the
# product-level calls by productId (shared by the two SKUs of a pair).
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('shared_product', requests_per_second => 200, batch_size => 1);
$node->append_conf('postgresql.conf', "deadlock_timeout = '200ms'\n");
$node->reload;
$node->poll_query_until('postgres', 'SHOW deadlock_timeout', '200ms')
  or die 'deadlock_timeout not reloaded';

sub sql { return $node->safe_psql('postgres', $_[0]); }

my @pairs = map { [ "MANY-SH$_", "SH-ALIAS-$_" ] } 1 .. 10;
my @pair_b = ('MANY-SHB', 'SH-ALIAS-B');
my @pair_c = ('MANY-SHC', 'SH-ALIAS-C');
my %aliases = map { $_->[1] => $_->[0] } @pairs, \@pair_b, \@pair_c;

admin_reset();
admin_config({ alias_skus => \%aliases, variants_order => 'shuffle' });

# The stand-in resolves both SKUs of a pair to one product of 60 variants.
my @not_shared;
for my $p (@pairs, \@pair_b, \@pair_c)
{
	my ($t, $a) = map { expect_product($_) } @$p;
	push @not_shared, $p->[1]
	  unless $a->{found} && $a->{product}{productId} eq $t->{product}{productId}
	  && @{ $t->{variants} } == 60;
}
is_deeply(\@not_shared, [], 'each alias resolves to its MANY- target (one product, 60 variants)');

# Rows, variants and request counts of the pairs; returns a list of problems.
sub pair_problems
{
	my ($pairs, $reqs) = @_;
	my @bad;
	my $rows = json_decode_utf8(sql(q{
		SELECT json_object_agg(sku, json_build_object('status', status, 'attempts', attempts,
			'last_error', last_error, 'id', stockx_product_id, 'lease', lease_pid))
		  FROM stockx_product}));
	for my $p (@$pairs)
	{
		my $e = expect_product($p->[0]);
		my $pid = lc $e->{product}{productId};
		for my $sku (@$p)
		{
			my $r = $rows->{$sku};
			push @bad, "$sku: status $r->{status}, attempts $r->{attempts}, last_error "
			  . ($r->{last_error} // 'NULL')
			  unless $r->{status} eq 'enriched' && $r->{attempts} == 0 && !defined $r->{last_error};
			push @bad, "$sku: product id " . ($r->{id} // 'NULL') unless ($r->{id} // '') eq $pid;
			push @bad, "$sku: lease kept" if defined $r->{lease};
		}
		my $in = join(',', map { "'$_'" } @$p);
		my $have = sql("SELECT count(DISTINCT variant_id) FROM stockx_variant WHERE sku IN ($in)"
			  . ' AND variant_id = ANY (ARRAY['
			  . join(',', map { "'$_->{variantId}'" } @{ $e->{variants} }) . ']::uuid[])');
		push @bad, "@$p: $have of the product's 60 variants stored" unless $have == 60;

		# requests: searches by SKU, product-level calls by productId
		my $total = 0;
		for my $sku (@$p)
		{
			my $n = grep { $_->{endpoint} eq 'search' && $_->{query} =~ /(?:^|&)query=\Q$sku\E(?:&|$)/ } @$reqs;
			push @bad, "$sku searched $n times" if $n > 2;
			$total += $n;
		}
		$total += grep { $_->{path} =~ m{/products/\Q$pid\E(?:/|$)}i } @$reqs;
		push @bad, "@$p cost $total requests (more than 6 per SKU)" if $total > 12;
	}
	return @bad;
}

# ---------------------------------------------------------------- part A: pairs written concurrently
# one enqueue per SKU (created_at increases), so the two workers claim the
# two SKUs of a pair together
enqueue_skus($node, $_) for map { @$_ } @pairs;
my $run_a = sql('SELECT stockx_enrich_start(2)');
is(wait_run($node, $run_a, 120), 'done', 'part A: the run ends done');
my @bad = pair_problems(\@pairs, api_requests());
is_deeply(\@bad, [], 'part A: both SKUs of every pair enriched, attempts 0, no error, at most 6 requests each')
  or diag(join("\n", @bad));
is(sql("SELECT concat_ws('|', enriched, failed) FROM stockx_run WHERE run_id = $run_a"),
	(2 * @pairs) . '|0', 'part A: stockx_run counts every SKU enriched, none failed');
my $deadlocks_a = () = slurp_file($node->logfile) =~ /deadlock detected/g;
note "part A: $deadlocks_a deadlock(s) in the server log";

# ---------------------------------------------------------------- parts B and C: forced conflicts
# The alias is enriched first, so the product's 60 variant rows exist; then
# an external session locks them FOR UPDATE and the target is enriched.
# B: once the worker waits on the lock, the session updates the target's
#    stockx_product row: a deadlock, which the worker detects (40P01).
# C: with lock_timeout = 1s for the cluster, the worker's wait times out
#    (55P03); the session keeps its locks 1.5 s in all, then commits.
sub forced_conflict
{
	my ($label, $pair, $mode) = @_;
	my ($target, $alias) = @$pair;

	admin_reset();
	admin_config({ alias_skus => \%aliases, variants_order => 'shuffle' });
	enqueue_skus($node, $alias);
	my $run1 = sql('SELECT stockx_enrich_start(1)');
	is(wait_run($node, $run1, 60), 'done', "$label: $alias enriched first");
	is(sql("SELECT count(*) FROM stockx_variant WHERE sku = '$alias'"), 60,
		"$label: the product's 60 variant rows exist");

	# answers of 200 ms: the worker writes well after the session watches for it
	admin_reset();
	admin_config({ alias_skus => \%aliases, variants_order => 'shuffle', latency_ms => 200 });
	enqueue_skus($node, $target);
	my $log_offset = -s $node->logfile;

	my $ext = $node->background_psql('postgres');
	$ext->query_safe(q{
		CREATE FUNCTION pg_temp.wait_for_lock_waiter(timeout_s float8) RETURNS boolean
		LANGUAGE plpgsql AS $$
		DECLARE
			deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
		BEGIN
			WHILE clock_timestamp() < deadline LOOP
				IF EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()) THEN
					RETURN true;
				END IF;
				PERFORM pg_sleep(0.005);
			END LOOP;
			RETURN false;
		END $$});
	$ext->query_safe('BEGIN');
	$ext->query_safe(q{SET LOCAL deadlock_timeout = '60s'});
	$ext->query_safe(q{SET LOCAL lock_timeout = 0});
	is($ext->query_safe(
			"SELECT count(*) FROM (SELECT 1 FROM stockx_variant WHERE sku = '$alias' FOR UPDATE) locked"),
		60, "$label: an external session locks the 60 variant rows");

	my $run2 = sql('SELECT stockx_enrich_start(1)');
	is($ext->query_safe('SELECT pg_temp.wait_for_lock_waiter(20)'), 't',
		"$label: the worker writing $target waits for the external session's lock");
	if ($mode eq 'deadlock')
	{
		# the worker holds its write transaction's locks: close the cycle
		$ext->query_safe("UPDATE stockx_product SET updated_at = now() WHERE sku = '$target'");
	}
	else
	{
		$ext->query_safe('SELECT pg_sleep(1.5)');
	}
	$ext->query_safe('COMMIT');
	$ext->quit;

	is(wait_run($node, $run2, 60), 'done', "$label: the run ends done");
	my $log = substr(slurp_file($node->logfile), $log_offset);
	my $error = $mode eq 'deadlock' ? 'deadlock detected' : 'canceling statement due to lock timeout';
	note "$label: the worker " . ($log =~ /\Q$error\E/ ? 'got' : 'did not get') . " the error \"$error\"";
	my @bad = pair_problems([$pair], api_requests());
	is_deeply(\@bad, [],
		"$label: $target enriched despite the $mode (attempts 0, no error), $alias still enriched")
	  or diag(join("\n", @bad));
	is(sql("SELECT concat_ws('|', enriched, failed) FROM stockx_run WHERE run_id = $run2"),
		'1|0', "$label: stockx_run counts the target enriched, none failed");
}

forced_conflict('part B', \@pair_b, 'deadlock');

sql(q{ALTER SYSTEM SET lock_timeout = '1s'});
sql('SELECT pg_reload_conf()');
$node->poll_query_until('postgres', 'SHOW lock_timeout', '1s') or die 'lock_timeout not reloaded';
forced_conflict('part C', \@pair_c, 'lock_timeout');
sql('ALTER SYSTEM RESET lock_timeout');
sql('SELECT pg_reload_conf()');

is(sql(q{SELECT count(*) FROM stockx_product WHERE status = 'failed'}), 0, 'no row is failed');

$node->stop;
done_testing();
