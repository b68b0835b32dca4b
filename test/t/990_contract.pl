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
#      and the selling read side: the seeded account (GET /_admin/selling)
#      through the listing pages (default pageSize 1, pages of 5 and of
#      100 with selling_listing_count, isExpired, every filter, the 400s),
#      each listing by id (404, 400), active and historical orders (paging,
#      fromDate / toDate, orderStatus, productId, variantId, sortOrder,
#      the 400s), each order by number (404), the payout lines,
#      selling_add_orders, selling_listing_changes, gating, uppercase_ids;
#  (b) the validator rejects answers that break the schemas (a hand-made
#      answer log: catalogue and selling ones), so that (c) means something;
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

# ---------------------------------------------------------------- (a) selling: the account
# GET /_admin/selling: the whole account as the API shows it now
sub admin_selling
{
	my $r = $http->request('GET', standin_url() . '/_admin/selling');
	die "stand-in /_admin/selling: $r->{status}" unless $r->{success};
	return $json->decode($r->{content});
}

# (HTTP status, body) of POST /_admin/config, which may refuse
sub admin_config_raw
{
	my $r = $http->request('POST', standin_url() . '/_admin/config',
		{ content => $json->encode($_[0]), headers => { 'content-type' => 'application/json' } });
	return ($r->{status}, eval { $json->decode($r->{content}) });
}

sub sell { my ($path, %opt) = @_; return api("/selling$path", %opt); }

# a ListingResponse cut down to a ListListings item
sub item_of
{
	my %l = %{ $_[0] };
	delete @l{qw(payout lastOperation)};
	return \%l;
}

my $acct = admin_selling();
my @all_l = @{ $acct->{listings} };
my %expired = map { $_ => 1 } @{ $acct->{expired} };
my @live = grep { !$expired{ $_->{listingId} } } @all_l;
my %role_pid = map { ($_->{role} eq 'unqueued' ? 'unqueued' : $_->{sku}) => $_->{productId} }
  @{ $acct->{skus} };
is(scalar(@all_l) . ' ' . scalar(@live), '14 13', 'the seed: 14 listings, 1 of them expired');
my %l_statuses = map { $_->{status} => 1 } @all_l;
is(join(',', sort keys %l_statuses), 'ACTIVE,CANCELED,COMPLETED,DELETED,INACTIVE,MATCHED',
	'every listing status of the document');
is(join(',', sort map { $_->{currencyCode} // 'null' } grep { $_->{status} eq 'ACTIVE' || !defined $_->{currencyCode} } @all_l),
	'EUR,GBP,USD,null', 'active listings in USD, EUR, GBP; a deleted one with null amount and currency');
ok(grep({ !defined $_->{ask} } @all_l) && grep({ defined $_->{order} } @all_l)
	  && grep({ defined $_->{payout} } @all_l) && grep({ !defined $_->{payout} } @all_l),
	'some listings have no ask, some an order, some a payout, some none');

my ($exp) = map { $_->{listingId} } grep { $expired{ $_->{listingId} } } @all_l;
($st, $b) = sell('/listings');
is("$st $b->{count} $b->{pageSize} $b->{pageNumber} " . @{ $b->{listings} }, '200 13 1 1 1',
	'listings: 1 a page by default, count 13 (the expired listing left out)');
ok($b->{hasNextPage}, 'and a next page');
my (@got, @more);
for my $n (1 .. 5)
{
	($st, $b) = sell("/listings?pageSize=5&pageNumber=$n");
	push @got, @{ $b->{listings} };
	push @more, $b->{hasNextPage} ? 1 : 0;
	last unless $b->{hasNextPage};
}
is(join('', @more), '110', 'pages of 5: three, the last without a next page');
is_deeply(\@got, [ map { item_of($_) } @live ],
	'they hold every live listing once, newest first, as ListListings (no payout, no lastOperation)');
($st, $b) = sell('/listings?pageSize=5&pageNumber=4');
ok($st == 200 && !@{ $b->{listings} } && !$b->{hasNextPage} && $b->{count} == 13,
	'a page past the end: 200, empty, count 13');
($st, $b) = sell('/listings?pageSize=100&isExpired=true');
is_deeply([ $b->{count}, $b->{listings} ], [ 14, [ map { item_of($_) } @all_l ] ],
	'isExpired=true: the expired listing too');
($st, $b) = sell('/listings?pageSize=100&isExpired=false');
is($b->{count}, 13, 'isExpired=false: the default');

sub listed
{
	my ($query) = @_;
	my ($s, $body) = sell("/listings?pageSize=100&$query");
	return $s == 200 ? join(' ', map { $_->{listingId} } @{ $body->{listings} }) : "status $s";
}
sub ids_of { return join(' ', map { $_->{listingId} } @_); }
is(listed('listingStatuses=ACTIVE,%20INACTIVE'),
	ids_of(grep { $_->{status} =~ /^(ACTIVE|INACTIVE)$/ } @live), 'listingStatuses ACTIVE, INACTIVE');
is(listed('listingStatuses=MATCHED&isExpired=true'),
	ids_of(grep { $_->{status} eq 'MATCHED' } @all_l), 'listingStatuses MATCHED');
ok(!grep({ !$_->{order} } grep { $_->{status} eq 'MATCHED' } @all_l), 'a MATCHED listing has its order');
my $pid_new = $role_pid{unqueued};
is(listed("productIds=$role_pid{'SX-SELL-3'},$pid_new&isExpired=true"),
	ids_of(grep { $_->{product}{productId} =~ /^(\Q$role_pid{'SX-SELL-3'}\E|\Q$pid_new\E)$/ } @all_l),
	'productIds (two)');
ok(grep({ $_->{product}{productId} eq $pid_new } @all_l), 'a listing of the unqueued product');
my $l0 = $live[0];
is(listed('variantIds=' . uc($l0->{variant}{variantId})), $l0->{listingId}, 'variantIds (any case)');
my ($flex) = grep { ($_->{inventoryType} // '') eq 'FLEX' } @live;
is(listed('inventoryTypes=FLEX'), $flex->{listingId}, 'inventoryTypes FLEX');
is(listed("initiatedShipmentDisplayIds=$flex->{initiatedShipments}{inbound}{displayId}"),
	$flex->{listingId}, 'initiatedShipmentDisplayIds');
my ($batched) = grep { $_->{batch} } @live;
is(listed("batchIds=$batched->{batch}{batchId}"), $batched->{listingId}, 'batchIds');
is(listed('fromDate=2026-11-01&toDate=2026-11-18'),
	ids_of(grep { substr($_->{createdAt}, 0, 10) ge '2026-11-01' && substr($_->{createdAt}, 0, 10) le '2026-11-18' } @live),
	'fromDate / toDate: created on those days (both included)');
for my $q ('pageSize=0', 'pageSize=101', 'pageSize=abc', 'pageSize=', 'pageNumber=0',
	'pageNumber=1.5', 'listingStatuses=DELETED', 'listingStatuses=active',
	'listingStatuses=%5BACTIVE%5D', 'listingStatuses=ACTIVE,', 'productIds=%22x%22',
	'inventoryTypes=DFS', 'isExpired=yes', 'fromDate=2026-13-01', 'toDate=01%2F12%2F2026',
	'fromDate=2026-12-01&toDate=2026-11-01')
{
	($st, $b) = sell("/listings?$q");
	is($st, 400, "listings?$q: 400");
}
is_error_body($b, 400, 'a bad listings query');

# one listing
my @bad_l = grep {
	my $l = $_;
	my ($s, $body) = sell("/listings/$l->{listingId}");
	!($s == 200 && $json->encode($body) eq $json->encode($l));
} @all_l;
is(ids_of(@bad_l), '', 'each listing by id: 200, its ListingResponse');
my ($matched) = grep { $_->{order} && $_->{payout} } @live;
my ($unpaid) = grep { $_->{order} && !$_->{payout} } @live;
ok($matched && $unpaid, 'a listing with an order has its payout, or null while nothing is paid');
($st, $b) = sell('/listings/' . uc($l0->{listingId}));
is("$st $b->{listingId}", "200 $l0->{listingId}", 'a listing id in upper case');
($st, $b) = sell('/listings/00000000-0000-4000-8000-000000000000');
is($st, 404, 'an unknown listing: 404');
is_error_body($b, 404, 'that 404');
($st, $b) = sell('/listings/not-a-uuid');
is($st, 400, 'a listing id that is no UUID: 400');
is_error_body($b, 400, 'that 400');

# ---------------------------------------------------------------- (a) selling: orders
my @details = @{ $acct->{orders} };
my @items = @{ $acct->{order_items} };
my %active_status = map { $_ => 1 } qw(CREATED CCAUTHORIZATIONFAILED SHIPPED RECEIVED AUTHENTICATING
  AUTHENTICATED PAYOUTPENDING PAYOUTCOMPLETED SYSTEMFULFILLED PAYOUTFAILED SUSPENDED PENDING DONOTSHIP);
my @act = grep { $active_status{ $_->{status} } } @items;
my @hist = grep { !$active_status{ $_->{status} } } @items;
is(scalar(@act) . ' ' . scalar(@hist), '4 4', 'the seed: 8 orders, 4 active, 4 in the history');
($st, $b) = sell('/orders/active');
is("$st $b->{count} $b->{pageSize} $b->{pageNumber}", '200 4 10 1', 'active orders: pageSize 10 by default');
is_deeply($b->{orders}, \@act, 'the active orders, newest first');
($st, $b) = sell('/orders/history');
is_deeply([ $st, $b->{count}, $b->{pageSize}, $b->{orders} ], [ 200, 4, 10, \@hist ],
	'the history: 4 orders, pageSize 10 by default');
ok(grep({ !defined $_->{listingId} } @hist), 'one order of the history has no listing (listingId null)');
ok(grep({ !defined $_->{payout} } @items) && grep({ defined $_->{payout} } @items),
	'the lists give some orders a payout, some null');
($st, $b) = sell('/orders/history?pageSize=3');
my $p1 = $b;
($st, $b) = sell('/orders/history?pageSize=3&pageNumber=2');
ok($p1->{hasNextPage} && @{ $p1->{orders} } == 3 && !$b->{hasNextPage} && @{ $b->{orders} } == 1,
	'history in pages of 3: 3 and a next page, then 1');
($st, $b) = sell('/orders/history?pageSize=2&pageNumber=2');
ok(@{ $b->{orders} } == 2 && !$b->{hasNextPage}, 'pages of 2: page 2 holds the last 2, no next page');
($st, $b) = sell('/listings?pageSize=13');
ok(@{ $b->{listings} } == 13 && !$b->{hasNextPage}, 'listings: a page of exactly count, no next page');
sub numbers { return join(' ', map { $_->{orderNumber} } @_); }
sub ordered
{
	my ($path) = @_;
	my ($s, $body) = sell($path);
	return $s == 200 ? numbers(@{ $body->{orders} }) : "status $s";
}
is(ordered('/orders/history?fromDate=2026-09-01&toDate=2026-10-15'),
	numbers(grep { $_->{createdAt} ge '2026-09-01' && $_->{createdAt} lt '2026-10-16' } @hist),
	'history fromDate / toDate (YYYY-MM-DD, both included)');
is(ordered('/orders/history?fromDate=2026-10-10'),
	numbers(grep { $_->{createdAt} ge '2026-10-10' } @hist), 'history fromDate alone');
is(ordered('/orders/history?orderStatus=CANCELED'),
	numbers(grep { $_->{status} eq 'CANCELED' } @hist), 'history orderStatus CANCELED');
is(ordered('/orders/active?orderStatus=SHIPPED'),
	numbers(grep { $_->{status} eq 'SHIPPED' } @act), 'active orderStatus SHIPPED');
is(ordered("/orders/active?productId=$pid_new"),
	numbers(grep { $_->{product}{productId} eq $pid_new } @act), 'active productId: the unqueued product');
ok(grep({ $_->{product}{productId} eq $pid_new } @act), 'which has an order');
my $o_v = $hist[0]{variant}{variantId};
is(ordered("/orders/history?variantId=$o_v"), numbers(grep { $_->{variant}{variantId} eq $o_v } @hist),
	'history variantId');
is(ordered('/orders/active?inventoryTypes=DIRECT'),
	numbers(grep { $_->{inventoryType} eq 'DIRECT' } @act), 'active inventoryTypes DIRECT');
my %ship_by = map { $_->{orderNumber} => ($_->{shipment} // {})->{shipByDate} // '~' } @details;
is(ordered('/orders/active?sortOrder=SHIPBYDATE'),
	numbers(sort { $ship_by{ $a->{orderNumber} } cmp $ship_by{ $b->{orderNumber} } } @act),
	'active sortOrder SHIPBYDATE: soonest ship-by date first');
for my $q ('/orders/active?orderStatus=COMPLETED', '/orders/active?sortOrder=PRICE',
	'/orders/active?pageSize=101', '/orders/active?pageNumber=0', '/orders/history?orderStatus=CREATED',
	'/orders/history?fromDate=2026-02-30', '/orders/history?toDate=20261201',
	'/orders/history?fromDate=2026-12-01&toDate=2026-11-30', '/orders/history?inventoryTypes=STANDARD,X')
{
	($st, $b) = sell($q);
	is($st, 400, "$q: 400");
}
is_error_body($b, 400, 'a bad orders query');

# one order
my @bad_o = grep {
	my $o = $_;
	my ($s, $body) = sell("/orders/$o->{orderNumber}");
	!($s == 200 && $json->encode($body) eq $json->encode($o));
} @details;
is(numbers(@bad_o), '', 'each order by number: 200, its DetailedOrder (payout never null)');
my ($flexnum) = grep { /[A-Z]/ } map { $_->{orderNumber} } @details;
($st, $b) = sell('/orders/' . lc $flexnum);
is("$st $b->{orderNumber}", "200 $flexnum", 'an order number in another case');
($st, $b) = sell('/orders/999999999-999999999');
is($st, 404, 'an unknown order number: 404 (the document is silent)');
is_error_body($b, 404, 'that 404');
my %lines;
for my $o (@details)
{
	$lines{ $_->{adjustmentType} }++ for @{ $o->{payout}{adjustments} };
}
ok($lines{'Shipping Fee'} && $lines{'Transaction Fee (8.5%)'} && $lines{'Successful Ship Bonus (1%)'},
	'payout lines: a flat shipping fee, a rate other than 9 %, a bonus');
my ($o85) = grep { grep { $_->{adjustmentType} eq 'Transaction Fee (8.5%)' } @{ $_->{payout}{adjustments} } } @details;
is(join(' ', map { $_->{amount} } @{ $o85->{payout}{adjustments} }) . " = $o85->{payout}{totalAdjustments}; "
	  . "$o85->{payout}{salePrice} -> $o85->{payout}{totalPayout}",
	'-14.88 -5.25 -7.00 = -27.13; 175.00 -> 147.87', '8.5 % of 175 is rounded half up, the rest adds up');

# ---------------------------------------------------------------- (a) selling: the knobs
admin_config({ selling_listing_count => 250 });
my (%seen_l, @sizes);
for my $n (1 .. 4)
{
	($st, $b) = sell("/listings?pageSize=100&pageNumber=$n");
	$seen_l{ $_->{listingId} }++ for @{ $b->{listings} };
	push @sizes, scalar(@{ $b->{listings} }) . ($b->{hasNextPage} ? '+' : '');
	last unless $b->{hasNextPage};
}
is("$b->{count}: @sizes", '249: 100+ 100+ 49', 'selling_listing_count 250: 249 live listings in pages of 100');
is(scalar(keys %seen_l), 249, 'each once');
admin_config({ selling_listing_count => 3 });
($st, $b) = sell('/listings?pageSize=100');
is_deeply([ map { $_->{listingId} } @{ $b->{listings} } ], [ map { $_->{listingId} } @all_l[0 .. 2] ],
	'selling_listing_count 3: the first 3 of the seed');
admin_config({ selling_listing_count => undef,
	selling_add_orders => [ { sku => 'SX-SELL-2', variant => 4, amount => '199', currencyCode => 'EUR',
		shippingFee => '7.00', orderNumber => '777000001-777000002' } ] });
($st, $b) = sell('/orders/active');
my $added = $b->{orders}[0];
is("$b->{count} $added->{orderNumber} $added->{status} $added->{amount} $added->{currencyCode}",
	'5 777000001-777000002 CREATED 199 EUR', 'selling_add_orders: a new active order, the newest');
ok(!defined $added->{payout}, 'CREATED: no payout in the list yet');
($st, $b) = sell('/orders/777000001-777000002');
is(join(' ', map { $_->{amount} } @{ $b->{payout}{adjustments} }) . " -> $b->{payout}{totalPayout}",
	'-17.91 -5.97 -7.00 -> 168.12', 'the order has its payout lines (9 %, 3 %, shipping)');
($st, $b) = sell("/listings/$added->{listingId}");
is("$st $b->{status} $b->{order}{orderNumber}", '200 MATCHED 777000001-777000002', 'and its listing');
my ($bad_st) = admin_config_raw({ selling_add_orders => [ { sku => 'NF-SELL-1', amount => '10' } ] });
is($bad_st, 400, 'an added order of an unknown SKU is refused');
admin_config({ selling_listing_changes => { $l0->{listingId} => { status => 'DELETED', amount => undef } } });
($st, $b) = sell("/listings/$l0->{listingId}");
ok($b->{status} eq 'DELETED' && !defined $b->{ask} && !defined $b->{amount} && $b->{updatedAt} gt $l0->{updatedAt},
	'selling_listing_changes: deleted, no ask, no amount, updatedAt now');
($bad_st) = admin_config_raw({ selling_listing_changes => { '00000000-0000-4000-8000-000000000000' => { status => 'ACTIVE' } } });
is($bad_st, 400, 'a change of an unknown listing is refused');
admin_reset();
is_deeply(admin_selling()->{listings}, \@all_l, '/_admin/reset: the seed again');

# ---------------------------------------------------------------- (a) selling: gating and ids
($st, $b) = sell('/listings', headers => { 'x-api-key' => 'test-api-key' });
is($st, 401, 'the selling calls want a bearer');
($st, $b) = sell('/listings', headers => { Authorization => 'Bearer test-access-token' });
is($st, 403, 'and an API key');
admin_config({ fail_next => [ { status => 500, count => 1, endpoint => 'listings' } ] });
($st, $b) = sell('/listings');
is($st, 500, 'fail_next with endpoint "listings"');
is_error_body($b, 500, 'the forced 500');
admin_config({ rate_limit_rps => 1 });
sell('/orders/history');
($st, $b) = sell('/orders/history');
is($st, 429, 'the limiter covers the selling calls');
admin_config({ rate_limit_rps => undef });
my $stats = admin_stats()->{by_endpoint};
ok(($stats->{listings} // 0) >= 2 && ($stats->{orders_history} // 0) >= 2,
	'the log names them (listings, orders_history ...)');
($st, $b) = sell('/listings', method => 'POST');
is($st, 405, 'POST /selling/listings: 405 (no writes)');
($st, $b) = sell("/listings/$l0->{listingId}/operations");
is($st, 404, 'an unknown selling route: 404');
admin_config({ uppercase_ids => JSON::PP::true });
($st, $b) = sell("/listings/$l0->{listingId}");
is("$b->{listingId} $b->{product}{productId} $b->{variant}{variantId}",
	"$l0->{listingId} " . uc($l0->{product}{productId}) . ' ' . uc($l0->{variant}{variantId}),
	'uppercase_ids reaches the product and variant ids of a listing');
is(listed("productIds=$l0->{product}{productId}&listingStatuses=ACTIVE"),
	ids_of(grep { $_->{product}{productId} eq $l0->{product}{productId} && $_->{status} eq 'ACTIVE' } @live),
	'and the filters still match');
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
	my $litem = item_of($live[0]);
	my %lpage = (count => 2, pageSize => 1, pageNumber => 1, hasNextPage => JSON::PP::true,
		listings => [$litem]);
	my $lpaid = $matched;          # a ListingResponse with a payout
	my %opage = (count => 1, pageSize => 10, pageNumber => 1, hasNextPage => JSON::PP::false);
	my ($odetail) = grep { $_->{payout}{adjustments}[2] } @details;
	my ($hpaid) = grep { $_->{payout} } @hist;   # a ListOrders item with a payout
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
		[ market => 404, { statusCode => 404, message => 'Not Found' } ],
		# selling
		[ listings => 200, { %lpage, listings => [ { %$litem, amount => 180 } ] } ],
		[ listings => 200, { map { $_ => $lpage{$_} } grep { $_ ne 'hasNextPage' } keys %lpage } ],
		[ listings => 200, { %lpage, listings => [ { %$litem, payout => undef } ] } ],
		[ listings => 200, { %lpage, listings => [ { %$litem, status => 'LIVE' } ] } ],
		[ listings => 200, { %lpage, hasNextPage => JSON::PP::false } ],
		[ listings => 200, { %lpage, pageSize => 150 } ],
		[ listings => 404, { statusCode => 404, message => 'Not Found' } ],
		[ listing => 200, { map { $_ => $lpaid->{$_} } grep { $_ ne 'lastOperation' } keys %$lpaid } ],
		[ listing => 200, { %$lpaid, createdAt => '2026-11-20 10:00:00' } ],
		[ orders_active => 200, { %opage, orders => [ $hpaid ] } ],
		[ orders_history => 200, { %opage, orders => [ { %$hpaid, payout => { %{ $hpaid->{payout} },
			totalPayout => '1.00' } } ] } ],
		[ orders_history => 200, { %opage, orders => [ { %$hpaid, payout => { %{ $hpaid->{payout} },
			adjustments => [ { %{ $hpaid->{payout}{adjustments}[0] }, amount => -10.8 } ] } } ] } ],
		[ orders_history => 404, { statusCode => 404, message => 'Not Found' } ],
		[ order => 200, { %$odetail, condition => undef } ],
		[ order => 200, { %$odetail, payout => undef } ],
		[ order => 200, { %$odetail, amount => undef } ]);
	my @good = ([ product => 200, $item ], [ market => 200, $plain{market} ],
		[ variants => 200, $plain{variants} ], [ gtin => 200, $v0 ],
		[ variant_market => 400, { statusCode => 400, message => 'no' } ],
		[ listings => 200, \%lpage ], [ listing => 200, $lpaid ],
		[ orders_history => 200, { %opage, orders => [ $hpaid ] } ], [ order => 200, $odetail ],
		[ order => 404, { statusCode => 404, message => 'Order not found' } ]);
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
	'product 403', 'product 429', 'market 503', 'listings 200', 'listings 400', 'listings 401',
	'listings 403', 'listings 405', 'listings 500', 'listing 200', 'listing 400', 'listing 404',
	'orders_active 200', 'orders_active 400', 'orders_history 200', 'orders_history 400',
	'orders_history 429', 'order 200', 'order 404');
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
import collections, decimal, glob, json, os, sys

import jsonschema
from jsonschema import Draft202012Validator

schema_dir, answers_dir = sys.argv[1], sys.argv[2]
SHOW = int(sys.argv[3]) if len(sys.argv) > 3 else 5

# the schema that a 2xx answer of each endpoint must match
SCHEMA_OF = {"search": "search.json", "product": "product.json", "variants": "variants.json",
             "variant": "variant-details.json", "gtin": "variant-details.json",
             "market": "market-data-list.json", "variant_market": "market-data.json",
             "listings": "listings.json", "listing": "listing.json",
             "orders_active": "orders.json", "orders_history": "orders.json",
             "order": "order.json"}
# the statuses the document lists for each call
DOCUMENTED = {"search": {200, 401, 500}, "product": {200, 401, 404, 500},
              "variants": {200, 401, 404, 500}, "variant": {200, 400, 401, 404, 500},
              "gtin": {200, 400, 401, 404, 500}, "market": {200, 401, 500},
              "variant_market": {200, 400, 401, 500},
              "listings": {200, 400, 401, 500}, "listing": {200, 400, 401, 404, 500},
              "orders_active": {200, 400, 401, 500}, "orders_history": {200, 400, 401, 500},
              "order": {200, 401, 500}}
# statuses of the portal rather than the document: a refused API key, the limits
ALWAYS = {403, 429}
# where the document is silent, the stand-in's choice (test/standin/README.md):
# an unknown order number is 404, though GetOrder lists only 200, 401 and 500
CHOSEN = {"order": {404}}
# paged answers: the key of their items and the document's pageSize maximum
PAGED = {"search": ("products", 50), "listings": ("listings", 100),
         "orders_active": ("orders", 100), "orders_history": ("orders", 100)}
# which orders each list call gives: ActiveOrderStatus, HistoricalOrderStatus
ORDER_STATUSES = {
    "orders_active": {"CREATED", "CCAUTHORIZATIONFAILED", "SHIPPED", "RECEIVED",
                      "AUTHENTICATING", "AUTHENTICATED", "PAYOUTPENDING", "PAYOUTCOMPLETED",
                      "SYSTEMFULFILLED", "PAYOUTFAILED", "SUSPENDED", "PENDING", "DONOTSHIP"},
    "orders_history": {"AUTHFAILED", "DIDNOTSHIP", "CANCELED", "COMPLETED", "RETURNED"}}

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
    if ep in DOCUMENTED and not rec.get("forced") \
            and status not in DOCUMENTED[ep] | ALWAYS | CHOSEN.get(ep, set()) \
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
    if ep in PAGED:
        key, most = PAGED[ep]
        n, size, page = len(body[key]), body["pageSize"], body["pageNumber"]
        if not 1 <= size <= most or page < 1:
            out.append(f"pageSize {size} / pageNumber {page} outside the document's ranges")
        if n > size:
            out.append(f"{n} {key} on a page of {size}")
        if body["hasNextPage"] != (page * size < body["count"]):
            out.append(f"hasNextPage {body['hasNextPage']} with count {body['count']}, "
                       f"page {page} of {size}")
    if ep in ORDER_STATUSES:
        for o in body["orders"]:
            if o["status"] not in ORDER_STATUSES[ep]:
                out.append(f"{o['orderNumber']}: status {o['status']} in the answer of {ep}")
    # the stand-in's rule for a payout: the lines add up
    sales = {"listing": [body], "order": [body]}.get(ep) or (
        body["orders"] if ep in ORDER_STATUSES else [])
    for sale in sales:
        pay = sale.get("payout")
        if pay is None:
            continue
        name = sale.get("orderNumber") or sale.get("listingId")
        D = decimal.Decimal
        total = sum((D(a["amount"]) for a in pay["adjustments"]), D(0))
        if D(pay["totalAdjustments"]) != total:
            out.append(f"{name}: totalAdjustments {pay['totalAdjustments']} is not the sum "
                       f"of the adjustments ({total})")
        if D(pay["totalPayout"]) != D(pay["salePrice"]) + D(pay["totalAdjustments"]):
            out.append(f"{name}: totalPayout {pay['totalPayout']} is not salePrice "
                       f"{pay['salePrice']} plus totalAdjustments {pay['totalAdjustments']}")
        if sale.get("currencyCode") is not None and pay["currencyCode"] != sale["currencyCode"]:
            out.append(f"{name}: payout in {pay['currencyCode']}, the sale in "
                       f"{sale['currencyCode']}")
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
