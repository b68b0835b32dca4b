# Barcodes (1.2): stockx_gtin, stockx_lookup_gtin(), stockx_size_conversion,
# stockx_enrich_enqueue_gtins().
#
#  (a) after a run enriches 3 SKUs from the stand-in, stockx_gtin holds
#      exactly the GTINs of their variants (identifier, type, variant, sku);
#      stockx_lookup_gtin() finds a variant's product and size by its UPC,
#      its EAN-13, the UPC written with blanks or as 13 digits; a valid
#      GTIN nobody lists gives no row; '12345', a bad check digit, a
#      hyphen give SQLSTATE 22023 with a hint;
#  (b) upkeep: deleting a variant removes its GTINs, updating gtins
#      replaces them (entries that are not strings of digits left out), an
#      update to the same gtins rewrites nothing, a SKU renamed in
#      stockx_product follows; stockx_gtin_rebuild() gives the same rows;
#      a dump restored into another database has the same stockx_gtin;
#  (c) stockx_size_conversion: us_m, us_w and eu of every stand-in variant
#      as in its sizeChart ('us m' / 'us w' / 'eu', label removed); a hand-
#      made variant with a full chart (US M, US W, UK, EU, CM) against
#      literals, another with upper-case types and '27.5 cm', one without
#      a chart;
#  (d) stockx_enrich_enqueue_gtins(): a GTIN some variant lists queues
#      nothing (0), in either form; a new one queues one row (query_kind
#      'gtin', the digits as sku), once; an invalid one errors 22023 naming
#      it and queues nothing of the array; NULL errors 22004.
use strict;
use warnings;

use File::Temp ();
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('gtin', requests_per_second => 50);
admin_reset();

sub sql { my ($q, $db) = @_; return $node->safe_psql($db // 'postgres', $q); }

# The SQLSTATE and hint of the error a statement raises ('no error' if none).
sub error_of { return sql_error($node, $_[0]); }

# What the stand-in's size label looks like without its label.
sub unlabel { my ($s) = @_; return undef unless defined $s; $s =~ s/^(?:US [MWY]|EU) //; return $s; }

# ---------------------------------------------------------------- (a) after a run
# GTIN-1: unisex (us m, 10 sizes); GTIN-7: women (us w); NUL-GTIN-1: its
# second variant has no gtins and an empty size chart.
my @skus = ('GTIN-1', 'GTIN-7', 'NUL-GTIN-1');
enqueue_skus($node, @skus);
is(sql('SELECT stockx_enrich_wait(stockx_enrich_start(), 60000)'), 'done', 'the run ended done');
is(sql(q{SELECT string_agg(sku || ':' || status, ',' ORDER BY sku) FROM stockx_product}),
	'GTIN-1:enriched,GTIN-7:enriched,NUL-GTIN-1:enriched', 'the 3 SKUs are enriched');

my %expect = map { $_ => expect_product($_) } @skus;
my @want;
for my $sku (@skus)
{
	for my $v (@{ $expect{$sku}{variants} })
	{
		push @want, "$_->{identifier} $_->{type} " . lc($v->{variantId}) . " $sku"
		  for @{ $v->{gtins} };
	}
}
@want = sort @want;
cmp_ok(scalar(@want), '>', 10, scalar(@want) . ' GTINs at the stand-in');
my @got = split /\n/, sql(q{SELECT gtin || ' ' || gtin_type || ' ' || variant_id || ' ' || sku
	FROM stockx_gtin ORDER BY 1});
is_deeply(\@got, \@want, 'stockx_gtin holds exactly the stand-in\'s GTINs');

my $v3 = $expect{'GTIN-1'}{variants}[3];
my ($upc) = map { $_->{identifier} } grep { $_->{type} eq 'UPC' } @{ $v3->{gtins} };
my ($ean) = map { $_->{identifier} } grep { $_->{type} eq 'EAN-13' } @{ $v3->{gtins} };
like($upc, qr/^\d{12}$/, "variant 3 of GTIN-1 has the UPC $upc");
like($ean, qr/^\d{13}$/, "and the EAN-13 $ean");

sub lookup
{
	my ($g) = @_;
	return sql(qq{SELECT concat_ws('|', sku, title, brand, style_id, size, variant_id, gtin_type, status)
		FROM stockx_lookup_gtin('$g')});
}
my $row = join('|', 'GTIN-1', $expect{'GTIN-1'}{product}{title}, $expect{'GTIN-1'}{product}{brand},
	$expect{'GTIN-1'}{product}{styleId}, $v3->{variantValue}, lc $v3->{variantId});
utf8::encode($row);    # psql's output is bytes (the title may have accents)
is(lookup($upc), "$row|UPC|enriched", 'the UPC finds the product and size');
is(lookup($ean), "$row|EAN-13|enriched", 'the EAN-13 finds the same variant');
my $spaced = substr($upc, 0, 1) . ' ' . substr($upc, 1, 5) . ' ' . substr($upc, 6) . ' ';
is(lookup($spaced), "$row|UPC|enriched", "blanks are ignored ('$spaced')");
is(lookup("0$upc"), "$row|UPC|enriched", 'the UPC written as 13 digits finds it too');
my $size_of = sql(qq{SELECT size FROM stockx_lookup_gtin('$upc')});
is($size_of, $v3->{variantValue}, "size $size_of");

my %known = map { (split / /)[0] => 1 } @want;
ok(!$known{'96385074'}, 'the EAN-8 96385074 is not at the stand-in');
is(sql(q{SELECT count(*) FROM stockx_lookup_gtin('96385074')}), 0, 'an unknown valid GTIN gives no row');
is(sql(q{SELECT count(*) FROM stockx_lookup_gtin(NULL)}), 0, 'NULL gives no row');

my $bad_check = substr($upc, 0, 11) . ((substr($upc, 11, 1) + 1) % 10);
for my $bad ('12345', $bad_check, substr($upc, 0, 4) . '-' . substr($upc, 4), '', 'ABCDEFGH')
{
	my ($rc, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT * FROM stockx_lookup_gtin('$bad');");
	isnt($rc, 0, "lookup of '$bad' fails");
	like($err, qr/ERROR:  22023: invalid GTIN '\Q$bad\E'/, "'$bad': SQLSTATE 22023, naming it");
	like($err, qr/HINT:  \S/, "'$bad': with a hint");
}

# ---------------------------------------------------------------- (b) upkeep
my $gone = lc $expect{'GTIN-1'}{variants}[0]{variantId};
my $n_before = sql('SELECT count(*) FROM stockx_gtin');
sql("DELETE FROM stockx_variant WHERE variant_id = '$gone'");
is(sql("SELECT count(*) FROM stockx_gtin WHERE variant_id = '$gone'"), 0,
	'deleting a variant removes its GTINs');
is(sql('SELECT count(*) FROM stockx_gtin'), $n_before - 2, 'and only those');

my $changed = lc $expect{'GTIN-7'}{variants}[0]{variantId};
my ($old_upc) = map { $_->{identifier} } grep { $_->{type} eq 'UPC' }
  @{ $expect{'GTIN-7'}{variants}[0]{gtins} };
sql(qq{UPDATE stockx_variant SET gtins = '[{"identifier": " 96385074 ", "type": "EAN-8"},
	{"identifier": "4006381333931", "type": "EAN-13"}, {"identifier": 12345670, "type": "number"},
	{"identifier": "12-34", "type": "junk"}, "junk", {"type": "UPC"}]'
	WHERE variant_id = '$changed'});
is(sql("SELECT string_agg(gtin || ' ' || coalesce(gtin_type, '-') || ' ' || sku, ',' ORDER BY gtin)
	FROM stockx_gtin WHERE variant_id = '$changed'"),
	'4006381333931 EAN-13 GTIN-7,96385074 EAN-8 GTIN-7',
	'updating gtins replaces the variant\'s rows (digit strings only, trimmed)');
is(sql("SELECT count(*) FROM stockx_lookup_gtin('$old_upc')"), 0, 'the old UPC finds nothing');
is(sql(q{SELECT sku || ' ' || variant_id FROM stockx_lookup_gtin('96385074')}), "GTIN-7 $changed",
	'the new GTIN finds the variant');

my $xmins = sql("SELECT string_agg(xmin::text, ',' ORDER BY gtin) FROM stockx_gtin WHERE variant_id = '$changed'");
sql("UPDATE stockx_variant SET gtins = gtins, variant_name = 'x' WHERE variant_id = '$changed'");
is(sql("SELECT string_agg(xmin::text, ',' ORDER BY gtin) FROM stockx_gtin WHERE variant_id = '$changed'"),
	$xmins, 'an update to the same gtins rewrites no row');

sql("UPDATE stockx_variant SET gtins = NULL WHERE variant_id = '$changed'");
is(sql("SELECT count(*) FROM stockx_gtin WHERE variant_id = '$changed'"), 0, 'gtins NULL: no row');
sql(q{UPDATE stockx_variant SET gtins = '{"identifier": "96385074"}' WHERE variant_id = '} . $changed . q{'});
is(sql("SELECT count(*) FROM stockx_gtin WHERE variant_id = '$changed'"), 0, 'gtins not an array: no row');
sql(qq{UPDATE stockx_variant SET gtins = '[{"identifier": "96385074", "type": "EAN-8"}]'
	WHERE variant_id = '$changed'});

sql(q{UPDATE stockx_product SET sku = 'GTIN-7-RENAMED' WHERE sku = 'GTIN-7'});
is(sql(q{SELECT count(*) FROM stockx_gtin WHERE sku = 'GTIN-7'}) . '/'
	  . sql(q{SELECT count(*) FROM stockx_gtin WHERE sku = 'GTIN-7-RENAMED'}),
	'0/' . (2 * @{ $expect{'GTIN-7'}{variants} } - 1), 'a renamed SKU follows into stockx_gtin');
sql(q{UPDATE stockx_product SET sku = 'GTIN-7' WHERE sku = 'GTIN-7-RENAMED'});

my $all = q{SELECT string_agg(gtin || ' ' || coalesce(gtin_type, '-') || ' ' || variant_id || ' ' || sku,
	',' ORDER BY gtin, variant_id) FROM stockx_gtin};
my $now = sql($all);
is(sql('SELECT stockx_gtin_rebuild()'), sql('SELECT count(*) FROM stockx_gtin'),
	'stockx_gtin_rebuild() returns the number of rows');
is(sql($all), $now, 'and rebuilds the same rows');
is(sql(q{SELECT has_function_privilege('public', 'stockx_gtin_rebuild()', 'EXECUTE')}), 'f',
	'stockx_gtin_rebuild() is not for PUBLIC');

# stockx_gtin is dumped with the variants (after them: the foreign key
# orders the data) and a restore has the same rows.
my $tmp = File::Temp->newdir();
$node->command_ok([ 'pg_dump', '-f', "$tmp/gtin.sql", '-d', $node->connstr('postgres') ],
	'pg_dump of the database');
ok(-s "$tmp/gtin.sql" && slurp_file("$tmp/gtin.sql") =~ /^COPY \S+\.stockx_gtin /m,
	'the dump has the data of stockx_gtin');
sql('CREATE DATABASE gtin_restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', "$tmp/gtin.sql",
		'-d', $node->connstr('gtin_restored') ], 'the dump restores');
is(sql($all, 'gtin_restored'), $now, 'the restored database has the same stockx_gtin');
sql('DROP DATABASE gtin_restored');

# ---------------------------------------------------------------- (c) size conversion
my @bad;
my $nconv = 0;
for my $sku (@skus)
{
	for my $v (@{ $expect{$sku}{variants} })
	{
		my $id = lc $v->{variantId};
		next if $id eq $gone;
		my %by;
		for my $c (@{ $v->{sizeChart}{availableConversions} })
		{
			$by{ $c->{type} } //= unlabel($c->{size});
		}
		my $want = join('|', map { $_ // 'null' } $sku, $v->{variantValue}, @by{ 'us m', 'us w', 'eu' },
			'null', 'null');
		my $got = sql(qq{SELECT concat_ws('|', sku, coalesce(size, 'null'), coalesce(us_m, 'null'),
			coalesce(us_w, 'null'), coalesce(eu, 'null'), coalesce(uk, 'null'), coalesce(cm, 'null'))
			FROM stockx_size_conversion WHERE variant_id = '$id'});
		push @bad, "$id: got $got, want $want" unless $got eq $want;
		$nconv++;
	}
}
is_deeply(\@bad, [], "stockx_size_conversion matches the stand-in's size charts ($nconv variants)");
is(sql(q{SELECT count(*) FROM stockx_size_conversion}), $nconv, 'one row per variant');
ok(sql(q{SELECT count(*) FILTER (WHERE us_m IS NOT NULL) > 0 AND count(*) FILTER (WHERE us_w IS NOT NULL) > 0
	FROM stockx_size_conversion}) eq 't', 'the stand-in products have both us m and us w charts');

sql(q{
	INSERT INTO stockx_product (sku, status) VALUES ('CHART-1', 'enriched');
	INSERT INTO stockx_variant (variant_id, sku, variant_value, size_chart) VALUES
	('00000000-0000-4000-8000-0000000000c1', 'CHART-1', '9.5',
	 '{"defaultConversion": {"size": "US M 9.5", "type": "us m"}, "availableConversions": [
	   {"size": "US M 9.5", "type": "us m"}, {"size": "US W 11", "type": "us w"},
	   {"size": "UK 8.5", "type": "uk"}, {"size": "EU 43", "type": "eu"},
	   {"size": "CM 27.5", "type": "cm"}, {"size": "EU 44", "type": "eu"}]}'),
	('00000000-0000-4000-8000-0000000000c2', 'CHART-1', '10',
	 '{"availableConversions": [{"size": "27.5 cm", "type": "CM"}, {"size": "US M 10", "type": "US M"},
	   {"size": "EU 42 2/3", "type": "Eu"}, {"size": "JP 28", "type": "jp"}]}'),
	('00000000-0000-4000-8000-0000000000c3', 'CHART-1', '11', NULL);
});
is(sql(q{SELECT string_agg(concat_ws('|', size, coalesce(us_m, '-'), coalesce(us_w, '-'), coalesce(uk, '-'),
		coalesce(eu, '-'), coalesce(cm, '-')), ',' ORDER BY variant_id)
	FROM stockx_size_conversion WHERE sku = 'CHART-1'}),
	'9.5|9.5|11|8.5|43|27.5,10|10|-|-|42 2/3|27.5,11|-|-|-|-|-',
	'a full chart, upper-case types and no chart give the literal sizes');

is(sql(q{SELECT has_table_privilege('pg_monitor', 'stockx_gtin', 'SELECT')
	AND has_table_privilege('pg_monitor', 'stockx_size_conversion', 'SELECT')}), 't',
	'pg_monitor may read stockx_gtin and stockx_size_conversion');

# ---------------------------------------------------------------- (d) enqueue by GTIN
my $products = sql('SELECT count(*) FROM stockx_product');
is(sql("SELECT stockx_enrich_enqueue_gtins(ARRAY['$upc'])"), 0, 'a GTIN some variant lists queues nothing');
is(sql("SELECT stockx_enrich_enqueue_gtins(ARRAY['0$upc', '$ean', ' $upc '])"), 0,
	'nor does it in its 13-digit form, its EAN-13 or with blanks');
is(sql('SELECT count(*) FROM stockx_product'), $products, 'no row was added');

# 5901234123457 (EAN-13) is nobody's at the stand-in
ok(!$known{'5901234123457'}, '5901234123457 is not at the stand-in');
is(error_of(q{SELECT stockx_enrich_enqueue_gtins(ARRAY['5901234123457', '12345'])}),
	'22023 Fix or remove that GTIN; nothing was queued.', 'an invalid GTIN: 22023 with a hint');
my ($rc, $out, $err) = $node->psql('postgres',
	"SELECT stockx_enrich_enqueue_gtins(ARRAY['5901234123457', '$bad_check'])");
like($err, qr/invalid GTIN '\Q$bad_check\E'/, 'the error names the GTIN with the bad check digit');
($rc, $out, $err) = $node->psql('postgres',
	"SELECT stockx_enrich_enqueue_gtins(ARRAY['5901234123457', NULL])");
like($err, qr/invalid GTIN NULL/, 'a NULL element is invalid too');
is(sql('SELECT count(*) FROM stockx_product'), $products, 'nothing of those arrays was queued');
like(error_of(q{SELECT stockx_enrich_enqueue_gtins(NULL)}), qr/^22004 \S/, 'a NULL array: 22004 with a hint');
is(sql(q{SELECT stockx_enrich_enqueue_gtins('{}')}), 0, 'an empty array queues nothing');

is(sql(q{SELECT stockx_enrich_enqueue_gtins(ARRAY[' 590 1234 12345 7', '5901234123457', '05901234123457'])}), 1,
	'a new GTIN queues one row (its forms in the same array count once)');
is(sql(q{SELECT sku || ' ' || query_kind || ' ' || status FROM stockx_product WHERE query_kind = 'gtin'}),
	'5901234123457 gtin pending', 'the digits as sku, query_kind gtin, pending');
is(sql(q{SELECT stockx_enrich_enqueue_gtins(ARRAY['5901234123457', '05901234123457'])}), 0,
	'queued once only, in any form');
# leave no GTIN row behind for the runs below
sql(q{DELETE FROM stockx_product WHERE sku = '5901234123457'});

# (e) enrichment by GTIN, end to end: the worker asks StockX's GTIN call
# (GET /catalog/products/variants/gtins/{gtin}), which names the variant and
# its product, then the product, its variants and market data: 4 requests
# for a product nobody holds; a GTIN queued in its zero-padded 14-digit form
# is the same number; an unknown GTIN (404) is not_found after 1 request.
# A barcode of a product some row holds already (another size's barcode,
# or the product of a style-id row) joins that row: 1 request, status
# merged, merged_into that row; one product, one row.
my $e1 = expect_product('GTINE-1');    # registers the products at the stand-in
my $v1 = $e1->{variants}[2];
my ($upc1) = map { $_->{identifier} } grep { $_->{type} eq 'UPC' } @{ $v1->{gtins} };
my $e2 = expect_product('GTINE-2');
my ($upc2) = map { $_->{identifier} } grep { $_->{type} eq 'UPC' } @{ $e2->{variants}[0]{gtins} };
my $padded = '00' . $upc2;
is(sql(qq{SELECT stockx_enrich_enqueue_gtins(ARRAY['$upc1', '$padded', '5901234123457'])}), 3,
	'three barcodes queued');
admin_reset();
is(sql('SELECT stockx_enrich_wait(stockx_enrich_start(), 60000)'), 'done', 'the run ended done');
is(sql(qq{SELECT string_agg(sku || ' ' || status || ' ' || coalesce(style_id, '-'), ', ' ORDER BY sku)
	FROM stockx_product WHERE query_kind = 'gtin'}),
	"$padded enriched GTINE-2, 5901234123457 not_found -, $upc1 enriched GTINE-1",
	'each barcode found its product, the unknown one is not_found');
is(sql(qq{SELECT concat_ws(' ', sku, size, variant_id) FROM stockx_lookup_gtin('$upc1')
	WHERE sku = '$upc1'}), "$upc1 $v1->{variantValue} " . lc $v1->{variantId},
	'stockx_lookup_gtin finds the size the barcode is on');
my %per;
$per{ $_->{endpoint} }++ for @{ api_requests() };
is(admin_stats()->{api_total}, 4 + 4 + 1,
	'4 requests per barcode of a new product (GTIN lookup, product, variants, market data), 1 for the unknown');
is(join(' ', map { "$_:$per{$_}" } sort keys %per), 'gtin:3 market:2 product:2 variants:2',
	'one GTIN lookup per barcode, no search');

# another size's barcode of GTINE-1, and a barcode of a product held by a style-id row
my ($upc1b) = map { $_->{identifier} } grep { $_->{type} eq 'EAN-13' } @{ $e1->{variants}[0]{gtins} };
enqueue_skus($node, 'GTINE-3');
is(sql('SELECT stockx_enrich_wait(stockx_enrich_start(), 60000)'), 'done', 'GTINE-3 enriched by style id');
my $e3 = expect_product('GTINE-3');
my ($upc3) = map { $_->{identifier} } grep { $_->{type} eq 'UPC' } @{ $e3->{variants}[1]{gtins} };
sql(q{DELETE FROM stockx_gtin WHERE gtin IN ('} . join("', '", $upc1b, $upc3) . q{')});
is(sql(qq{SELECT stockx_enrich_enqueue_gtins(ARRAY['$upc1b', '$upc3'])}), 2,
	'two barcodes of products rows hold already queued (their stockx_gtin rows removed by hand)');
admin_reset();
is(sql('SELECT stockx_enrich_wait(stockx_enrich_start(), 60000)'), 'done', 'the run ended done');
is(sql(qq{SELECT string_agg(sku || ' ' || status || ' ' || merged_into, ', ' ORDER BY sku)
	FROM stockx_product WHERE sku IN ('$upc1b', '$upc3')}),
	join(', ', sort ("$upc1b merged $upc1", "$upc3 merged GTINE-3")),
	'each joined the row that holds its product (merged, merged_into that row)');
is(admin_stats()->{api_total}, 2, 'one request each: the GTIN lookup');
is(sql(q{SELECT count(*) FROM stockx_product WHERE stockx_product_id = (SELECT stockx_product_id
	FROM stockx_product WHERE sku = 'GTINE-3') AND status = 'enriched'}), 1,
	'one enriched row per product');
sql('SELECT stockx_gtin_rebuild()');
is(sql(qq{SELECT string_agg(DISTINCT sku, ',') FROM stockx_lookup_gtin('$upc3')}), 'GTINE-3',
	"stockx_lookup_gtin('$upc3') names the product's row");

$node->stop;
done_testing();
