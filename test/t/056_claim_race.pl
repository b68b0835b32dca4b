# Workers of one run never take each other's rows.
#
# A claim takes over leases whose pid is no live worker.  A worker that
# read the list of live workers, then claimed, could see a sibling that
# attached and claimed in between as dead and take its fresh rows: the
# batch was enriched twice, its requests spent twice (seen in about half
# of the suite runs at the start of multi-worker runs).  Claims are now
# serialized by a lock (on the extension's catalog entry) taken before the list is read.
#
# Many short runs of four workers starting at once: every product must
# cost exactly its 3 requests, and the run's counters must agree.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('claim_race', requests_per_second => 500, batch_size => 5,
	pacing_margin_ms => 0);
my $rounds = 12;
my ($double, $bad_counts) = (0, 0);

for my $round (1 .. $rounds)
{
	admin_reset();
	my @skus = map { sprintf('CR%02d-%03d', $round, $_) } 1 .. 40;
	enqueue_skus($node, @skus);
	my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(4)');
	my $reason = wait_run($node, $run, 60);
	my %searches;
	$searches{ $_->{query} }++ for grep { $_->{endpoint} eq 'search' } @{ api_requests() };
	my @twice = grep { $_ > 1 } values %searches;
	$double += @twice;
	my ($requests, $enriched) = split /\|/,
	  $node->safe_psql('postgres', "SELECT requests || '|' || enriched FROM stockx_run WHERE run_id = $run");
	$bad_counts++ if $reason ne 'done' || $requests != 120 || $enriched != 40;
	note "round $round: $reason, $requests requests, " . scalar(@twice) . ' products searched twice';
}
is($double, 0, "$rounds runs of 4 workers: no product searched twice");
is($bad_counts, 0, "every run ends done with exactly 120 requests for its 40 products");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM stockx_product WHERE status <> 'enriched' OR lease_pid IS NOT NULL"),
	0, 'every product enriched, no lease left');

$node->stop;
done_testing();
