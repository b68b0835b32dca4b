# Text encodings: what StockX sends (JSON, UTF-8) against what the database
# can store.
#
# Defect pinned: the landed store hands the UTF-8 strings of the answer to
# SPI as they are, whatever the database encoding: in a LATIN1 database
# every non-ASCII letter becomes mojibake ("Crème" stored as "CrÃ¨me") and
# characters LATIN1 lacks are stored as garbage instead of being refused;
# raw invalid UTF-8 in an answer is stored as is in a UTF8 database; a
# \u0000 in a string is cut off at the NUL in the text columns and the row
# fails with a message that does not say why (jsonb refuses \u0000).
#
# Behaviour now expected:
# - UTF8 database: UNI- (characters outside LATIN1: curly quotes, CJK, emoji)
#   and LAT- SKUs are stored exactly as the stand-in sent them (title,
#   colorway and product->>'title', compared as UTF-8 bytes with
#   /_admin/expect); a ZERO- SKU (title "...Air\u0000Max...") ends 'failed'
#   with last_error naming the NUL (/NUL|\\u0000/i) and nothing half-written
#   (no variants, no product fields); a BADUTF- SKU (raw bytes FF FE in the
#   search answer's title) ends 'failed' with last_error matching /UTF-8/i,
#   nothing written either; a plain SKU of the same batch is enriched.
# - LATIN1 database (CREATE DATABASE ... ENCODING 'LATIN1', extension created
#   and run started there): a LAT- SKU is stored correctly (convert_to(title,
#   'UTF8') gives the stand-in's UTF-8 bytes; colorway and product->>'title'
#   too); a UNI- SKU ends 'failed' with last_error matching /LATIN1/ and no
#   variants; the other rows of the batch are enriched.
# Both databases are created by the test (template0), so the result does not
# depend on the cluster's default encoding.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('encoding', requests_per_second => 50);
admin_reset();

sub sql_in { my ($db, $q) = @_; return $node->safe_psql($db, $q); }

sub utf8_hex
{
	my ($s) = @_;
	return undef unless defined $s;
	utf8::encode($s);
	return unpack('H*', $s);
}

sub enqueue_in
{
	my ($db, @skus) = @_;
	return sql_in($db, 'SELECT stockx_enrich_enqueue(ARRAY[' . join(',', map { "'$_'" } @skus) . '])');
}

sub run_in
{
	my ($db) = @_;
	my $run = sql_in($db, 'SELECT stockx_enrich_start(1)');
	return sql_in($db, "SELECT stockx_enrich_wait($run, 60000)");
}

# The UTF-8 bytes of a text expression, hex-encoded: convert_to in a LATIN1
# database; in a UTF8 database textsend, which returns the stored bytes
# without checking them (convert_to would refuse to read back invalid UTF-8,
# which the landed code stores).
sub utf8_hex_sql
{
	my ($expr) = @_;
	return "encode(CASE WHEN current_setting('server_encoding') = 'UTF8' THEN textsend($expr) "
	  . "ELSE convert_to($expr, 'UTF8') END, 'hex')";
}

# sku => {status, last_error, variants, title_hex, colorway_hex, json_title_hex, product_id}
sub rows_in
{
	my ($db) = @_;
	my $out = sql_in($db,
		"SELECT json_object_agg(sku, json_build_object('status', status, "
		  . "'last_error', " . utf8_hex_sql('last_error') . ', '
		  . "'title_hex', " . utf8_hex_sql('title') . ', '
		  . "'colorway_hex', " . utf8_hex_sql('colorway') . ', '
		  . "'json_title_hex', " . utf8_hex_sql("product->>'title'") . ', '
		  . "'product_id', stockx_product_id, 'has_product', product IS NOT NULL, "
		  . "'variants', (SELECT count(*) FROM stockx_variant v WHERE v.sku = p.sku))) "
		  . 'FROM stockx_product p');
	my $rows = json_decode_utf8($out);
	for my $r (values %$rows)
	{
		# last_error as text (it came back hex-encoded to survive any encoding)
		$r->{last_error} = defined $r->{last_error} ? pack('H*', $r->{last_error}) : undef;
		utf8::decode($r->{last_error}) if defined $r->{last_error};
	}
	return $rows;
}

# Problems of a SKU that must be stored exactly as the stand-in sent it.
sub exact_problems
{
	my ($rows, $sku) = @_;
	my $e = expect_product($sku);
	my $r = $rows->{$sku};
	my @bad;
	return ("$sku: status $r->{status}: " . ($r->{last_error} // '')) unless $r->{status} eq 'enriched';
	push @bad, "$sku: title bytes $r->{title_hex}, expected " . utf8_hex($e->{product}{title})
	  unless ($r->{title_hex} // '') eq utf8_hex($e->{product}{title});
	push @bad, "$sku: colorway bytes " . ($r->{colorway_hex} // 'NULL') . ', expected '
	  . utf8_hex($e->{product}{productAttributes}{colorway})
	  unless ($r->{colorway_hex} // '') eq utf8_hex($e->{product}{productAttributes}{colorway});
	push @bad, "$sku: product->>'title' bytes " . ($r->{json_title_hex} // 'NULL')
	  unless ($r->{json_title_hex} // '') eq utf8_hex($e->{product}{title});
	push @bad, "$sku: $r->{variants} variants, expected " . scalar @{ $e->{variants} }
	  unless $r->{variants} == @{ $e->{variants} };
	return @bad;
}

# A SKU that must fail with nothing half-written.
sub failed_clean
{
	my ($rows, $sku, $error_re, $what) = @_;
	my $r = $rows->{$sku};
	ok($r->{status} eq 'failed' && ($r->{last_error} // '') =~ $error_re,
		"$sku ends failed, last_error names $what")
	  or diag("$sku: status $r->{status}, last_error " . ($r->{last_error} // 'NULL'));
	is(join('|', $r->{variants}, $r->{title_hex} // '-', $r->{product_id} // '-',
			$r->{has_product} ? 'json' : '-'),
		'0|-|-|-', "$sku: nothing half-written (no variants, title, product id or JSON)");
}

# sanity: the stand-in's kinds are what this test relies on
my $uni_title = expect_product('UNI-53A')->{product}{title};
ok(scalar(grep { ord($_) > 255 } split //, $uni_title) >= 3,
	'UNI- titles contain characters outside LATIN1');
my $lat_title = expect_product('LAT-53A')->{product}{title};
ok((grep { ord($_) > 127 } split //, $lat_title) && !(grep { ord($_) > 255 } split //, $lat_title),
	'LAT- titles contain accented letters, all of them in LATIN1');
like(expect_product('ZERO-53')->{product}{title}, qr/Air\x00Max/, 'the ZERO- title holds a NUL');
ok(expect_product('BADUTF-53')->{invalid_utf8}, 'the BADUTF- title is sent as invalid UTF-8');

# ---------------------------------------------------------------- UTF8 database
$node->safe_psql('postgres',
	q{CREATE DATABASE u8 TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'});
sql_in('u8', 'CREATE EXTENSION stockx_enrich');
my @u8_exact = ('UNI-53A', 'UNI-53B', 'LAT-53A', 'LAT-53B', 'ENC53-PLAIN-1');
enqueue_in('u8', @u8_exact, 'ZERO-53', 'BADUTF-53');
is(run_in('u8'), 'done', 'UTF8 database: the run ends done');
my $rows = rows_in('u8');
my @bad = map { exact_problems($rows, $_) } @u8_exact;
is_deeply(\@bad, [], 'UTF8 database: UNI-, LAT- and plain SKUs stored exactly as sent (title, colorway, JSON)')
  or diag(join("\n", @bad));
failed_clean($rows, 'ZERO-53', qr/NUL|\\u0000/i, 'the NUL');
failed_clean($rows, 'BADUTF-53', qr/UTF-8/i, 'invalid UTF-8');

# ---------------------------------------------------------------- LATIN1 database
$node->safe_psql('postgres',
	q{CREATE DATABASE lat TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'});
sql_in('lat', 'CREATE EXTENSION stockx_enrich');
my @lat_exact = ('LAT-53C', 'ENC53-PLAIN-2', 'ENC53-PLAIN-3');
enqueue_in('lat', 'LAT-53C', 'UNI-53C', 'ENC53-PLAIN-2', 'ENC53-PLAIN-3');
is(run_in('lat'), 'done', 'LATIN1 database: the run ends done');
$rows = rows_in('lat');
@bad = map { exact_problems($rows, $_) } @lat_exact;
is_deeply(\@bad, [], 'LATIN1 database: the LAT- SKU stored correctly (as UTF-8: the stand-in\'s bytes), the others of the batch enriched')
  or diag(join("\n", @bad));
failed_clean($rows, 'UNI-53C', qr/LATIN1/, 'the LATIN1 encoding');

$node->stop;
done_testing();
