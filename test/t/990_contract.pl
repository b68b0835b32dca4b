# The stand-in keeps to StockX's published OpenAPI document ("StockX Public
# API 2.0.0"), and so does every answer any TAP file got from it.
#
#  (a) this file's own stand-in, through every catalogue call: search pages
#      (default pageSize 1, clamping, count / hasNextPage, an exact match
#      pushed to page 2 by search_extra_hits), SearchProduct against
#      Product (sizeChart with "name", the flags), variants, one variant
#      (400 for another product's variant, 404 for an unknown product), the
#      GTIN lookup (200 in its 12-, 13- and 14-digit forms, 400, 404, the
#      gating), market data in the shapes "both", "nested" (AUD, JPY, KRW)
#      and "top", the 30 currencies, an unknown product's [] and the
#      variant-level 400, odd_ids, uppercase_ids, every error body;
#  (b) the validator rejects answers that break the schemas (a hand-made
#      answer log), so that (c) means something;
#  (c) every answer recorded in tmp_check/standin_answers (this file's and
#      those of the TAP files before it) matches test/schema/ and the
#      statuses the document lists; bodies broken on purpose are skipped.
use strict;
use warnings;

use File::Basename ();
use File::Path ();
use File::Spec;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $t0 = time();
my $answers = standin_answers_dir();
File::Path::make_path($answers);
my %before = map { $_ => 1 } glob("$answers/*.jsonl");
standin_start();
admin_reset();
my ($own) = grep { !$before{$_} } glob("$answers/*.jsonl");
ok(defined $own, 'the stand-in records its answers in STOCKX_STANDIN_ANSWERS');
$own = File::Basename::basename($own // '');

my $http = HTTP::Tiny->new(timeout => 60);
my $json = JSON::PP->new->utf8->canonical;
my %auth = ('x-api-key' => 'test-api-key', 'Authorization' => 'Bearer test-access-token');

# (status, decoded body or undef) of a /v2 call
sub api
{
	my ($path, %opt) = @_;
	my $r = $http->request($opt{method} // 'GET', standin_url() . "/v2$path",
		{ headers => $opt{headers} // \%auth });
	my $body = eval { $json->decode($r->{content}) };
	return ($r->{status}, $body);
}

sub search
{
	my ($query, $extra) = @_;
	my $q = $query;
	utf8::encode($q) if utf8::is_utf8($q);
	$q =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord($1))/ge;
	return api("/catalog/search?query=$q" . ($extra // ''));
}

# GS1 check digit appended to $digits
sub gs1
{
	my ($digits) = @_;
	my ($sum, $i) = (0, 0);
	$sum += $_ * ($i++ % 2 ? 1 : 3) for reverse split //, $digits;
	return $digits . ((10 - $sum % 10) % 10);
}

sub is_error_body
{
	my ($body, $status, $name) = @_;
	ok(ref $body eq 'HASH' && ($body->{statusCode} // 0) == $status
		  && defined $body->{message} && keys %$body == 2,
		"$name: {statusCode: $status, message}");
}

my @five = qw(lowestAskAmount highestBidAmount sellFasterAmount earnMoreAmount flexLowestAskAmount);
my @nested = qw(standardMarketData flexMarketData directMarketData);

# ---------------------------------------------------------------- (a) search
my ($st, $b) = search('CT-PLAIN-1');
is($st, 200, 'search answers 200');
is(join(' ', map { $b->{$_} } qw(count pageSize pageNumber)), '3 1 1',
	'no pageSize: 1 hit a page, count 3 (all hits)');
ok($b->{hasNextPage} && @{ $b->{products} } == 1, 'page 1 of 3 has a next page');
($st, $b) = search('CT-PLAIN-1', '&pageSize=1&pageNumber=3');
ok(!$b->{hasNextPage} && $b->{products}[0]{styleId} eq 'CT-PLAIN-1',
	'page 3 holds the product and no next page');
($st, $b) = search('CT-PLAIN-1', '&pageSize=1&pageNumber=4');
ok($st == 200 && !@{ $b->{products} } && !$b->{hasNextPage}, 'page 4 is empty');
($st, $b) = search('CT-PLAIN-1', '&pageSize=999&pageNumber=0');
is("$st $b->{pageSize} $b->{pageNumber} " . @{ $b->{products} }, '200 50 1 3',
	'pageSize 999 and pageNumber 0 are clamped (50, 1)');
($st, $b) = search('CT-PLAIN-1', '&pageSize=abc&pageNumber=-2');
is("$st $b->{pageSize} $b->{pageNumber}", '200 1 1', 'a pageSize that is no integer takes the default');
for my $q ('', 'x' x 101)
{
	($st, $b) = search($q);
	is("$st $b->{count} " . @{ $b->{products} }, '200 0 0',
		'a query of ' . length($q) . ' characters finds nothing, without a 400');
}
($st, $b) = api('/catalog/search');
is("$st $b->{count}", '200 0', 'no query at all: 200, nothing');

my %plain = %{ expect_product('CT-PLAIN-1') };
($st, $b) = search('CT-PLAIN-1', '&pageSize=50');
my $hit = $b->{products}[2];
is(join(',', sort keys %$hit),
	'brand,productAttributes,productId,productType,styleId,title,urlKey',
	'a search item is a SearchProduct: no sizeChart, no flags, nothing else');
($st, my $product) = api("/catalog/products/$hit->{productId}");
is($st, 200, 'the product call answers 200');
ok(ref $product->{sizeChart}{availableConversions} eq 'ARRAY'
	  && defined $product->{sizeChart}{defaultConversion}{name}
	  && !exists $product->{sizeChart}{defaultConversion}{size}
	  && JSON::PP::is_bool($product->{isFlexEligible})
	  && JSON::PP::is_bool($product->{isDirectEligible}),
	'a Product has sizeChart {availableConversions, defaultConversion {name, type}} and the flags');
is_deeply({ map { $_ => $product->{$_} } keys %$hit }, $hit, 'the Product repeats the search item');

# search_extra_hits: the exact match goes to page 2
admin_config({ search_extra_hits => { 'CT-PAGED-1' => 60 } });
($st, $b) = search('CT-PAGED-1', '&pageSize=50');
my @styles = map { $_->{styleId} } @{ $b->{products} };
ok($b->{count} == 63 && $b->{hasNextPage} && @styles == 50,
	'search_extra_hits 60: 63 hits, 50 on page 1, a next page');
ok(!grep({ my $s = $_; grep { uc(s/^\s+|\s+$//gr) eq 'CT-PAGED-1' } split m{/}, $s } @styles),
	'no exact match on page 1');
($st, $b) = search('CT-PAGED-1', '&pageSize=50&pageNumber=2');
push @styles, map { $_->{styleId} } @{ $b->{products} };
ok(@{ $b->{products} } == 13 && !$b->{hasNextPage} && $styles[-1] eq 'CT-PAGED-1',
	'page 2: 13 hits, the product last');
my %distinct = map { uc $_ => 1 } @styles;
is(scalar keys %distinct, 63, 'the 63 styleIds are distinct');
is(expect_product('CT-PAGED-1')->{product}{productId}, $b->{products}[-1]{productId},
	'/_admin/expect is unaffected');
admin_config({ search_extra_hits => {} });

# every kind of product, through search, product, variants and market data
# (validated in (c))
for my $sku (qw(NF-CT-1 CMP-CT-1 NUL-CT-1 MANY-CT-1 LAT-CT-1 UNI-CT-1 BIG-CT-1 NUM-CT-1
	BADUTF-CT-1 ZERO-CT-1))
{
	search($sku, '&pageSize=50');
	my $e = expect_product($sku);
	next unless $e->{found};
	my $pid = $e->{product}{productId};
	api("/catalog/products/$pid");
	api("/catalog/products/$pid/variants");
	api("/catalog/products/$pid/market-data?currencyCode=$_") for qw(USD EUR AUD);
	my $vid = $e->{variants}[-1]{variantId};
	api("/catalog/products/$pid/variants/$vid");
	api("/catalog/products/$pid/variants/$vid/market-data?currencyCode=JPY");
}
admin_config({ alias_skus => { 'CT-ALIAS-1' => 'CT-PLAIN-1' } });
search('CT-ALIAS-1', '&pageSize=50');
admin_config({ alias_skus => {} });

# ---------------------------------------------------------------- (a) variants
my $pid = $plain{product}{productId};
my $v0 = $plain{variants}[0];
($st, $b) = api("/catalog/products/$pid/variants");
is_deeply([ $st, $b ], [ 200, $plain{variants} ], 'variants: a bare array of the variants');
($st, $b) = api("/catalog/products/$pid/variants/$v0->{variantId}");
is_deeply([ $st, $b ], [ 200, $v0 ], 'one variant: the same object');
my %other = %{ expect_product('CT-OTHER-1') };
($st, $b) = api("/catalog/products/$pid/variants/$other{variants}[0]{variantId}");
is($st, 400, "another product's variant: 400");
is_error_body($b, 400, 'that 400');
($st, $b) = api('/catalog/products/00000000-0000-4000-8000-000000000000/variants/x');
is($st, 404, 'a variant of an unknown product: 404');
is_error_body($b, 404, 'that 404');
my %nul = %{ expect_product('NUL-CT-1') };
($st, $b) = api("/catalog/products/$nul{product}{productId}/variants/$nul{variants}[1]{variantId}");
ok($st == 200 && !defined $nul{variants}[1]{variantValue} && $b->{variantValue} eq '',
	'a variant whose value is null in the list has "" alone (the schema wants a string)');
($st, $b) = api("/catalog/products/$nul{product}{productId}");
ok($st == 200 && !defined $b->{sizeChart}{defaultConversion}
	  && !@{ $b->{sizeChart}{availableConversions} }, 'NUL-: an empty size chart');

# ---------------------------------------------------------------- (a) GTIN
my $gtin_calls = 0;
sub gtin { my ($g, %opt) = @_; $gtin_calls++; return api("/catalog/products/variants/gtins/$g", %opt); }
my $v1 = $plain{variants}[1] // $v0;
my ($upc) = map { $_->{identifier} } grep { $_->{type} eq 'UPC' } @{ $v1->{gtins} };
my ($ean) = map { $_->{identifier} } grep { $_->{type} eq 'EAN-13' } @{ $v1->{gtins} };
for my $g ($upc, "0$upc", "00$upc", $ean, "0$ean")
{
	($st, $b) = gtin($g);
	ok($st == 200 && $b->{variantId} eq $v1->{variantId} && $b->{productId} eq $pid,
		'GTIN ' . length($g) . " digits ($g): 200, the variant with its productId");
}
($st, $b) = gtin($upc);
is_deeply($b, $v1, 'the GTIN answer is the single-variant object');
my $bad_check = substr($upc, 0, 11) . ((substr($upc, 11) + 1) % 10);
for my $g ($bad_check, '12345', '1234567890', gs1('1234567890'), 'ABCDEFGHIJKL', '0' x 15)
{
	($st, $b) = gtin($g);
	is($st, 400, "GTIN '$g': 400");
}
is_error_body($b, 400, 'an invalid GTIN');
for my $g (gs1('9638507'), gs1('400638133393'), gs1('0' x 13))
{
	($st, $b) = gtin($g);
	is($st, 404, "valid GTIN $g that no variant carries: 404");
}
is_error_body($b, 404, 'an unknown GTIN');
admin_config({ fail_next => [ { status => 500, count => 1, endpoint => 'gtin' } ] });
($st, $b) = gtin($upc);
is($st, 500, 'fail_next with endpoint "gtin" reaches the GTIN lookup');
is_error_body($b, 500, 'the forced 500');
($st) = gtin($upc, headers => { 'x-api-key' => 'test-api-key' });
is($st, 401, 'the GTIN lookup wants a bearer');
($st) = gtin($upc, headers => { Authorization => 'Bearer test-access-token' });
is($st, 403, 'and an API key');
is(admin_stats()->{by_endpoint}{gtin} // 0, $gtin_calls, 'the log calls them "gtin"');

# ---------------------------------------------------------------- (a) market data
sub market { my ($cur) = @_; return api("/catalog/products/$pid/market-data?currencyCode=$cur"); }

($st, $b) = market('USD');
my $both = !grep {
	my $m = $_;
	!(exists $m->{lowestAskAmount} && exists $m->{standardMarketData}
		&& ($m->{lowestAskAmount} // '') eq ($m->{standardMarketData}{lowestAsk} // '')
		&& ($m->{highestBidAmount} // '') eq ($m->{standardMarketData}{highestBidAmount} // '')
		&& ($m->{flexLowestAskAmount} // '') eq ($m->{flexMarketData}{lowestAsk} // ''))
} @$b;
ok($st == 200 && @$b == @{ $plain{variants} } && $both,
	'USD: "both", the top-level amounts repeat standardMarketData (and flexMarketData.lowestAsk)');
for my $cur (qw(AUD JPY KRW))
{
	($st, $b) = market($cur);
	ok($st == 200 && !grep({ my $m = $_; grep { exists $m->{$_} } @five } @$b)
		  && !grep({ !$_->{standardMarketData} } @$b),
		"$cur: \"nested\" by default, no top-level amount at all");
}
admin_config({ market_shape => { USD => 'top', AUD => 'both' } });
($st, $b) = market('USD');
ok(!grep({ my $m = $_; grep { exists $m->{$_} } @nested } @$b)
	  && !grep({ !exists $_->{lowestAskAmount} } @$b), 'market_shape USD "top": no nested object');
($st, $b) = market('AUD');
ok(!grep({ !exists $_->{lowestAskAmount} || !$_->{standardMarketData} } @$b),
	'market_shape AUD "both"');
admin_config({ market_shape => {} });

my $e_aud = expect_product('CT-PLAIN-1', 'AUD');
ok(!exists $e_aud->{market}[0]{lowestAskAmount} && $e_aud->{market}[0]{standardMarketData},
	'/_admin/expect shows the shape of the currency asked for');

# flex and direct differ from standard; some figures are null
my ($direct_sku) = grep { expect_product($_)->{product}{isDirectEligible} } map { "CT-DIRECT-$_" } 1 .. 30;
ok(defined $direct_sku, 'some product is isDirectEligible');
search($direct_sku, '&pageSize=50');
my %d = %{ expect_product($direct_sku) };
($st, $b) = api("/catalog/products/$d{product}{productId}/market-data?currencyCode=EUR");
my $m0 = $b->[0];
ok(defined $m0->{directMarketData}{lowestAsk}
	  && $m0->{directMarketData}{lowestAsk} ne $m0->{standardMarketData}{lowestAsk}
	  && defined $m0->{flexMarketData}{lowestAsk}
	  && $m0->{flexMarketData}{lowestAsk} ne $m0->{standardMarketData}{lowestAsk},
	'Flex and Direct figures differ from the standard ones');
ok(!defined $m0->{directMarketData}{highestBidAmount}, 'Direct has no bid (null)');

my %whole = map { $_ => 1 } qw(CLP JPY KRW VND);
my @currencies = qw(AUD BRL CAD CHF CLP CNY DKK EUR GBP HKD HUF IDR ILS JPY KRW KWD MOP MXN
  MYR NOK NZD PEN PHP PLN SEK SGD THB TWD USD VND);
my @cur_bad;
for my $cur (@currencies)
{
	($st, $b) = market($cur);
	my @amounts = grep { defined } map { values %{ $_->{standardMarketData} } } @$b;
	push @cur_bad, $cur
	  unless $st == 200 && @$b && !grep({ $_->{currencyCode} ne $cur } @$b) && @amounts
	  && !grep { $whole{$cur} ? !/^\d+$/ : !/^\d+(\.5)?$/ } @amounts;
}
is("@cur_bad", '', 'the 30 currencies answer, whole amounts for CLP JPY KRW VND, halves elsewhere');
($st, $b) = market('XXX');
ok($st == 200 && $b->[0]{currencyCode} eq 'USD', 'an unknown currencyCode gives USD, not a 400');

($st, $b) = api("/catalog/products/$pid/variants/$v0->{variantId}/market-data?currencyCode=EUR");
my ($list_m) = grep { $_->{variantId} eq $v0->{variantId} } @{ (market('EUR'))[1] };
is_deeply([ $st, $b ], [ 200, $list_m ], 'variant market data: the entry of the product-level list');
($st, $b) = api("/catalog/products/$pid/variants/$other{variants}[0]{variantId}/market-data");
is($st, 400, "variant market data for another product's variant: 400");
is_error_body($b, 400, 'that 400');
($st, $b) = api('/catalog/products/00000000-0000-4000-8000-000000000000/variants/x/market-data');
is($st, 400, 'variant market data of an unknown product: 400 (the document lists no 404)');
($st, $b) = api('/catalog/products/00000000-0000-4000-8000-000000000000/market-data');
is_deeply([ $st, $b ], [ 200, [] ], 'product market data of an unknown product: 200 []');
($st, $b) = api('/catalog/products/00000000-0000-4000-8000-000000000000');
is($st, 404, 'an unknown product: 404');
is_error_body($b, 404, 'that 404');

# ---------------------------------------------------------------- (a) ids
admin_config({ odd_ids => ['CT-ODD-1'] });
search('CT-ODD-1', '&pageSize=50');
my %odd = %{ expect_product('CT-ODD-1') };
my $opid = $odd{product}{productId};
ok(!grep({ $_->{variantId} !~ /^v-\d+-\d+$/ } @{ $odd{variants} }), 'odd_ids: variantIds "v-<n>-<i>"');
my $ov = $odd{variants}[0];
($st, $b) = api("/catalog/products/$opid/variants");
is_deeply($b, $odd{variants}, 'odd ids in the variants list');
($st, $b) = api("/catalog/products/$opid/variants/$ov->{variantId}");
is("$st $b->{variantId}", "200 $ov->{variantId}", 'the variant route takes an odd id');
($st, $b) = api("/catalog/products/$opid/variants/$ov->{variantId}/market-data");
is("$st $b->{variantId}", "200 $ov->{variantId}", 'so does variant market data');
($st, $b) = api("/catalog/products/$opid/market-data");
ok(!grep({ $_->{variantId} !~ /^v-/ } @$b), 'odd ids in market data');
($st, $b) = gtin($ov->{gtins}[0]{identifier});
is("$st $b->{variantId}", "200 $ov->{variantId}", 'and in the GTIN answer');
admin_config({ odd_ids => [], uppercase_ids => JSON::PP::true });
($st, $b) = gtin($upc);
is("$st $b->{variantId} $b->{productId}", '200 ' . uc($v1->{variantId}) . ' ' . uc($pid),
	'uppercase_ids reaches the GTIN answer');
($st, $b) = api("/catalog/products/$pid/variants/$v0->{variantId}");
is("$st $b->{variantId}", '200 ' . uc($v0->{variantId}), 'and the single variant');
admin_config({ uppercase_ids => JSON::PP::false });

# ---------------------------------------------------------------- (a) errors
($st, $b) = api('/catalog/nothing-here');
is($st, 404, 'an unknown route: 404');
is_error_body($b, 404, 'that 404');
($st, $b) = api('/catalog/search?query=x', method => 'POST');
is($st, 405, 'POST: 405');
is_error_body($b, 405, 'that 405');
($st, $b) = api("/catalog/products/$pid", headers => {});
is($st, 403, 'no API key: 403');
is_error_body($b, 403, 'that 403');
($st, $b) = api("/catalog/products/$pid", headers => { 'x-api-key' => 'test-api-key' });
is_error_body($b, 401, 'no bearer: 401');
admin_config({ rate_limit_rps => 1 });
api("/catalog/products/$pid");
($st, $b) = api("/catalog/products/$pid");
is($st, 429, 'the limiter: 429');
is_error_body($b, 429, 'that 429');
admin_config({ rate_limit_rps => undef,
	fail_next => [ { status => 503, count => 1, endpoint => 'market' } ] });
($st, $b) = market('USD');
is_error_body($b, 503, 'a forced 503');

# bodies broken on purpose: recorded, marked, skipped in (c)
admin_config({ malformed_skus => ['CT-MAL-1'], oversize_skus => ['CT-HUGE-1'] });
($st) = search('CT-MAL-1');
is($st, 200, 'malformed_skus still answers 200');
($st) = search('CT-HUGE-1');
is($st, 200, 'oversize_skus too');
admin_reset();

# ---------------------------------------------------------------- (b) the validator bites
my $py;
for my $cand ('python3', '/usr/bin/python3')
{
	if (system($cand, '-c', 'import jsonschema') == 0) { $py = $cand; last; }
}
unless ($py)
{
	fail('no python3 with jsonschema (Debian: python3-jsonschema; test/install_deps.sh installs it)');
	done_testing();
	exit;
}
my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my $validator = "$tmp/contract_validate.py";
{
	open my $fh, '>', $validator or die "$validator: $!";
	print $fh validator_source();
	close $fh;
}
my $schemas = File::Spec->catdir($ENV{TESTDIR} // File::Spec->curdir(), 'schema');
$schemas = File::Spec->catdir(File::Basename::dirname(__FILE__), '..', 'schema') unless -d $schemas;

sub validate
{
	my ($dir) = @_;
	my $out = `$py -W ignore::DeprecationWarning $validator $schemas $dir 8`;
	die "validator failed: $?" if $?;
	return $json->decode($out);
}

my $bad_dir = "$tmp/contract_selftest";
File::Path::remove_tree($bad_dir);
File::Path::make_path($bad_dir);
{
	my $item = $plain{product};     # a Product: sizeChart and flags
	my %m = %{ $plain{market}[0] };
	my @bad = (
		[ search => 200, { count => 1, pageSize => 1, pageNumber => 1, hasNextPage => JSON::PP::false,
			products => [$item] } ],
		[ search => 200, { count => 2, pageSize => 1, pageNumber => 1, hasNextPage => JSON::PP::false,
			products => [] } ],
		[ market => 200, [ { %m, lowestAskAmount => 212 } ] ],
		[ market => 200, [ { %m, lastSaleAmount => '200' } ] ],
		[ market => 200, [ { %m, lowestAskAmount => '1' } ] ],
		[ variant_market => 200, { %m, currencyCode => 'XYZ' } ] ,
		[ gtin => 200, { %{ $nul{variants}[1] } } ],
		[ variants => 200, [ { %$v0, size => '9' } ] ],
		[ product => 200, { %$item, sizeChart => { availableConversions => [ { size => '9', type => 'us m' } ],
			defaultConversion => undef } } ],
		[ product => 404, { statusCode => 404, errorMessage => 'Not Found' } ],
		[ product => 404, { statusCode => 400, message => 'Not Found' } ],
		[ search => 404, { statusCode => 404, message => 'Not Found' } ],
		[ market => 404, { statusCode => 404, message => 'Not Found' } ]);
	my @good = ([ product => 200, $item ], [ market => 200, $plain{market} ],
		[ variants => 200, $plain{variants} ], [ gtin => 200, $v0 ],
		[ variant_market => 400, { statusCode => 400, message => 'no' } ]);
	open my $fh, '>', "$bad_dir/selftest.jsonl" or die $!;
	for (@bad, @good)
	{
		my ($ep, $status, $body) = @$_;
		print $fh $json->encode({ endpoint => $ep, method => 'GET', path => '/v2/x', query => '',
			status => $status, forced => JSON::PP::false, broken => undef, body => $body }), "\n";
	}
	close $fh;
	my $r = validate($bad_dir);
	is("$r->{validated} $r->{violations}", scalar(@bad + @good) . ' ' . scalar(@bad),
		'the validator rejects each of ' . scalar(@bad) . ' broken answers and accepts the good ones')
	  or diag(join("\n", @{ $r->{first} }));
}

# ---------------------------------------------------------------- (c) every answer
my $r = validate($answers);
note("answer logs: $r->{files}, answers: $r->{records}, validated: $r->{validated}");
note("skipped on purpose: $_ ($r->{skipped}{$_})") for sort keys %{ $r->{skipped} };
my %mine = %{ $r->{seen}{$own} // {} };
my @want = ('search 200', 'product 200', 'product 404', 'variants 200', 'variant 200', 'variant 400',
	'variant 404', 'gtin 200', 'gtin 400', 'gtin 404', 'gtin 500', 'market 200',
	'variant_market 200', 'variant_market 400', 'other 404', 'search 405', 'product 401',
	'product 403', 'product 429', 'market 503');
is(join(', ', grep { !$mine{$_} } @want), '', 'this file exercised every call and status');
my @reasons = sort keys %{ $r->{skipped} };
for my $kind ('malformed_skus', 'oversize_skus', 'BADUTF-', 'ZERO-', 'NUM-')
{
	ok(grep({ index($_, $kind) == 0 } @reasons), "bodies broken by $kind are marked and skipped");
}
is($r->{violations}, 0, "all $r->{validated} recorded answers keep to the document")
  or diag(join("\n", "first violations:", @{ $r->{first} }));
note(sprintf('990 took %.1f s', time() - $t0));

done_testing();

# The validator (Python 3 + jsonschema): validator.py SCHEMA_DIR ANSWERS_DIR [SHOW]
# reads every *.jsonl answer log of ANSWERS_DIR and prints a JSON summary:
# files, records, validated, skipped {reason: n}, violations (answers with
# any problem), first (the first SHOW of them), seen {file: {"endpoint
# status": n}}.
sub validator_source
{
	return <<'PY';
import collections, glob, json, os, sys

import jsonschema
from jsonschema import Draft202012Validator

schema_dir, answers_dir = sys.argv[1], sys.argv[2]
SHOW = int(sys.argv[3]) if len(sys.argv) > 3 else 5

# the schema that a 2xx answer of each endpoint must match
SCHEMA_OF = {"search": "search.json", "product": "product.json", "variants": "variants.json",
             "variant": "variant-details.json", "gtin": "variant-details.json",
             "market": "market-data-list.json", "variant_market": "market-data.json"}
# the statuses the document lists for each call
DOCUMENTED = {"search": {200, 401, 500}, "product": {200, 401, 404, 500},
              "variants": {200, 401, 404, 500}, "variant": {200, 400, 401, 404, 500},
              "gtin": {200, 400, 401, 404, 500}, "market": {200, 401, 500},
              "variant_market": {200, 400, 401, 500}}
# statuses of the portal rather than the document: a refused API key, the limits
ALWAYS = {403, 429}

schemas = {}
for path in sorted(glob.glob(os.path.join(schema_dir, "*.json"))):
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    schemas[os.path.basename(path)] = schema
try:
    from referencing import Registry, Resource
    registry = Registry().with_resources(
        [(s["$id"], Resource.from_contents(s)) for s in schemas.values()])
    validators = {name: Draft202012Validator(s, registry=registry)
                  for name, s in schemas.items()}
except ImportError:         # jsonschema before 4.18 (Debian bookworm: 4.10)
    store = {s["$id"]: s for s in schemas.values()}
    validators = {name: Draft202012Validator(
        s, resolver=jsonschema.RefResolver.from_schema(s, store=store))
        for name, s in schemas.items()}


def where(err):
    return "/" + "/".join(str(p) for p in err.absolute_path)


def problems(rec):
    """What is wrong with one recorded answer ([] if nothing)."""
    ep, status, body = rec.get("endpoint"), rec.get("status"), rec.get("body")
    out = []
    if ep in DOCUMENTED and not rec.get("forced") and status not in DOCUMENTED[ep] | ALWAYS \
            and not (status == 405 and rec.get("method") != "GET"):
        out.append(f"status {status} is not one the document lists for {ep} "
                   f"({sorted(DOCUMENTED[ep])})")
    if isinstance(status, int) and 200 <= status < 300:
        name = SCHEMA_OF.get(ep)
        if name is None:
            return out + [f"a {status} answer from an unknown route"]
    else:
        name = "error.json"
        if isinstance(body, dict) and body.get("statusCode") != status:
            out.append(f"statusCode {body.get('statusCode')!r} is not the HTTP status {status}")
    errs = sorted(validators[name].iter_errors(body), key=lambda e: list(e.absolute_path))
    out += [f"{name}: {where(e)}: {e.message[:300]}" for e in errs[:3]]
    if errs or not isinstance(status, int) or not 200 <= status < 300:
        return out
    if ep == "search":
        n, size, page = len(body["products"]), body["pageSize"], body["pageNumber"]
        if not 1 <= size <= 50 or page < 1:
            out.append(f"pageSize {size} / pageNumber {page} outside the document's ranges")
        if n > size:
            out.append(f"{n} products on a page of {size}")
        if body["hasNextPage"] != (page * size < body["count"]):
            out.append(f"hasNextPage {body['hasNextPage']} with count {body['count']}, "
                       f"page {page} of {size}")
    if ep in ("market", "variant_market"):
        # the stand-in's rule for "both": top-level amounts repeat the nested ones
        for md in body if isinstance(body, list) else [body]:
            std, flex = md.get("standardMarketData"), md.get("flexMarketData")
            if std is None or "lowestAskAmount" not in md:
                continue
            pairs = [("lowestAskAmount", std.get("lowestAsk")),
                     ("highestBidAmount", std.get("highestBidAmount")),
                     ("sellFasterAmount", std.get("sellFaster")),
                     ("earnMoreAmount", std.get("earnMore")),
                     ("flexLowestAskAmount", (flex or {}).get("lowestAsk"))]
            for key, nested in pairs:
                if md.get(key) != nested:
                    out.append(f"{md.get('variantId')}: {key} {md.get(key)!r} is not the "
                               f"nested figure {nested!r}")
    return out


summary = {"files": 0, "records": 0, "validated": 0, "skipped": collections.Counter(),
           "violations": 0, "first": [], "seen": {}}
for path in sorted(glob.glob(os.path.join(answers_dir, "*.jsonl"))):
    name = os.path.basename(path)
    seen = summary["seen"].setdefault(name, collections.Counter())
    summary["files"] += 1
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            summary["records"] += 1
            try:
                rec = json.loads(raw.decode("utf-8"))
            except ValueError as exc:
                found = [f"not a JSON line: {exc}"]
                rec = {}
            else:
                if rec.get("broken"):
                    summary["skipped"][rec["broken"]] += 1
                    continue
                seen[f"{rec.get('endpoint')} {rec.get('status')}"] += 1
                summary["validated"] += 1
                found = problems(rec)
            if found:
                summary["violations"] += 1
                if len(summary["first"]) < SHOW:
                    summary["first"].append(
                        f"{name}:{lineno} {rec.get('endpoint')} {rec.get('status')} "
                        f"{rec.get('path')}?{rec.get('query')}: " + "; ".join(found))
json.dump(summary, sys.stdout, ensure_ascii=False, sort_keys=True)
print()
PY
}
