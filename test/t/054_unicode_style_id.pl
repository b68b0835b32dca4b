# styleId matching is case-insensitive for non-ASCII letters too.
#
# Defect pinned: the landed match compares SKU and styleId with strncasecmp,
# which folds ASCII letters only: "CMP-ÉTÉ-1" does not match the styleId
# part "cmp-été-1", so a product StockX lists is recorded 'not_found'.
#
# Behaviour now expected: a SKU matches a styleId (or one of its '/'-parts)
# that differs from it only by letter case under Unicode simple case folding
# (É/é, Ä/ä, Σ/σ, Ω/ω, Cyrillic М/м ...): those SKUs end 'enriched' with the
# stand-in's product id and styleId, not 'not_found'.  ASCII SKUs and an
# exact non-ASCII styleId still match; a non-ASCII SKU whose search answer
# holds only near-misses is still 'not_found'.
# The stand-in builds CMP- styleIds with Python's str.swapcase(), which also
# swaps non-ASCII letters.  "ß" is left out on purpose: swapcase turns it
# into "SS", which simple case folding does not equate with "ß" (only full
# folding does), and which behaviour is right for it is not specified.
# The test runs in a database it creates (UTF8, locale C), so it depends on
# neither the cluster's default encoding nor an installed locale.
use strict;
use warnings;
use utf8;

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('unicode_style', requests_per_second => 50);
admin_reset();
$node->safe_psql('postgres',
	q{CREATE DATABASE shop TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'});

sub sql
{
	my ($q) = @_;
	utf8::encode($q);
	return $node->safe_psql('shop', $q);
}

# Test names as UTF-8 bytes (the TAP output handles are byte streams).
sub bytes
{
	my ($s) = @_;
	utf8::encode($s);
	return $s;
}

sub utf8_hex
{
	my ($s) = @_;
	utf8::encode($s);
	return unpack('H*', $s);
}

sql('CREATE EXTENSION stockx_enrich');

my @case_only = ('CMP-ÉTÉ-1', 'CMP-Ärger-2', 'CMP-ΣΟΦΙΑ-3', 'CMP-Ωmega-4', 'CMP-Москва-5');
my @plain = ('CMP-abc-6', 'DD5401-100', 'ÆØÅ-54');
my @missing = ('NF-ÉTÉ-7');
my @skus = (@case_only, @plain, @missing);

# the stand-in's styleIds differ from the SKUs by case only (non-ASCII included)
my %expect = map { $_ => expect_product($_) } @skus;
for my $sku (@case_only)
{
	my ($part) = grep { lc($_) eq lc($sku) } map { s/^\s+|\s+$//gr } split m{/}, $expect{$sku}{product}{styleId};
	ok(defined $part && $part ne $sku && $part =~ /[^\x00-\x7f]/,
		bytes("the stand-in lists $sku under the styleId part \"" . ($part // '?') . '", which differs only by case'));
}

is(sql('SELECT stockx_enrich_enqueue(ARRAY[' . join(',', map { "'$_'" } @skus) . '])'),
	scalar @skus, scalar(@skus) . ' SKUs queued');
my $run = sql('SELECT stockx_enrich_start(1)');
is(sql("SELECT stockx_enrich_wait($run, 60000)"), 'done', 'the run ends done');

my $rows = json_decode_utf8(sql(q{
	SELECT json_object_agg(encode(convert_to(sku, 'UTF8'), 'hex'), json_build_object(
		'status', status, 'id', stockx_product_id,
		'style_hex', encode(convert_to(style_id, 'UTF8'), 'hex')))
	  FROM stockx_product}));
for my $sku (@case_only, @plain)
{
	my $r = $rows->{ utf8_hex($sku) };
	my $p = $expect{$sku}{product};
	my $got = join('|', $r->{status}, $r->{id} // '-', $r->{style_hex} // '-');
	my $want = join('|', 'enriched', lc $p->{productId}, utf8_hex($p->{styleId}));
	my $label = (grep { $_ eq $sku } @case_only)
	  ? "$sku matches its styleId (case differs in non-ASCII letters): enriched"
	  : "$sku still matches: enriched";
	is($got, $want, bytes("$label, with the stand-in's product id and styleId"));
}
is($rows->{ utf8_hex('NF-ÉTÉ-7') }{status}, 'not_found', bytes('NF-ÉTÉ-7 (near-misses only) stays not_found'));

$node->stop;
done_testing();
