#!/usr/bin/perl
# Benchmark: does a worker's memory stay flat over a run of thousands of SKUs?
#
# Enriches N SKUs (default 3000) through one worker against the stand-in at
# a fast rate, samples the worker's memory in PostgreSQL contexts
# (stockx_enrich_status.memory_bytes) and its resident set (VmRSS) every
# second, and prints the figures: first, middle and last samples, the
# growth between the first and last quarter of the run, and throughput.
# Prints figures only; it asserts nothing.  Run through test/bench/run.sh.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use StockxTest;

my $n = $ENV{BENCH_SKUS} // 3000;
my $rate = $ENV{BENCH_RATE} // 300;
# no pacing margin: the stand-in here is no strict gateway, memory is what is measured
my $node = stockx_node('bench', requests_per_second => $rate, pacing_margin_ms => 0);
admin_reset();

$node->safe_psql('postgres',
	"SELECT stockx_enrich_enqueue(array_agg(format('B%05s-%s', g, CASE WHEN g % 10 = 0 THEN 'NF' ELSE 'OK' END))) "
	  . "FROM generate_series(1, $n) g");
$node->safe_psql('postgres', "UPDATE stockx_product SET sku = 'NF-' || sku WHERE sku LIKE '%-NF'");

my $t0 = time();
my $run = $node->safe_psql('postgres', 'SELECT stockx_enrich_start(1)');
my @samples;
while (1)
{
	my $row = $node->safe_psql('postgres',
		'SELECT pid, processed, memory_bytes FROM stockx_enrich_status');
	last unless $row;
	my ($pid, $processed, $mem) = split /\|/, $row;
	# RssAnon: private memory (palloc, json-c, libcurl); RssShmem grows with
	# the shared buffers the worker touches and is not the worker's own
	my ($anon, $shmem) = (0, 0);
	if (open my $fh, '<', "/proc/$pid/status")
	{
		while (<$fh>)
		{
			$anon = $1 * 1024 if /^RssAnon:\s+(\d+)/;
			$shmem = $1 * 1024 if /^RssShmem:\s+(\d+)/;
		}
	}
	push @samples, [ time() - $t0, $processed, $mem, $anon, $shmem ];
	sleep 1;
}
my $reason = wait_run($node, $run, 600);
my $elapsed = time() - $t0;
my $stats = $node->safe_psql('postgres',
	"SELECT processed, enriched, not_found, requests FROM stockx_run WHERE run_id = $run");

diag sprintf "run %s ended %s after %.1f s: processed|enriched|not_found|requests = %s\n",
  $run, $reason, $elapsed, $stats;
my ($processed, undef, undef, $requests) = split /\|/, $stats;
diag sprintf "throughput: %.1f products/s, %.1f requests/s (limit %d/s), %.2f requests/product\n",
  $processed / $elapsed, $requests / $elapsed, $rate, $requests / $processed;
diag sprintf "%8s %10s %14s %14s %14s", 'time_s', 'processed', 'context_bytes', 'rss_anon', 'rss_shmem';
my @keep = grep { $_ % int(@samples / 10 + 1) == 0 || $_ == $#samples } 0 .. $#samples;
diag sprintf("%8.1f %10d %14d %14d %14d", @{ $samples[$_] }) for @keep;

sub avg
{
	my ($from, $to, $col) = @_;
	my @s = @samples[$from .. $to];
	my $sum = 0;
	$sum += $_->[$col] for @s;
	return $sum / @s;
}
my $q = int(@samples / 4) || 1;
if (@samples >= 8)
{
	my ($m1, $m4) = (avg(1, $q, 2), avg(@samples - $q, $#samples, 2));
	my ($r1, $r4) = (avg(1, $q, 3), avg(@samples - $q, $#samples, 3));
	diag sprintf "context memory: first quarter avg %d, last quarter avg %d, growth %+d bytes (%+.2f%%)\n",
	  $m1, $m4, $m4 - $m1, 100 * ($m4 - $m1) / $m1;
	diag sprintf "private RSS:    first quarter avg %d, last quarter avg %d, growth %+d bytes (%+.2f%%)\n",
	  $r1, $r4, $r4 - $r1, 100 * ($r4 - $r1) / $r1;
}
ok(1, 'benchmark ran');
$node->stop;
done_testing();
