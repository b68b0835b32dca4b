# Payout after fees (1.2): stockx_fee_schedule, stockx_payout() and the view
# stockx_variant_payout.
#
#  (a) stockx_payout() against hand-computed payouts: the seller-level
#      rates, the minimum fee, rounding of each fee half away from zero (2
#      decimals, 0 for JPY and KRW), the watches / handbags exceptions, a
#      row a user adds taking effect from its valid_from (UTC date of
#      `at`), the level of the setting stockx_enrich.seller_level when the
#      level is NULL, and the errors with their SQLSTATE;
#  (b) the view: one row per variant and currency of stockx_market, with
#      the payout at the highest bid and at the lowest ask (NULL for a NULL
#      bid), for the level of the setting;
#  (c) pg_dump: the shipped fee rows are not dumped (CREATE EXTENSION
#      recreates them), a row a user added is, and a restore has both.
#
# Every expected amount is a literal worked out by hand below; none is
# computed by the test.
use strict;
use warnings;

use File::Temp ();
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use StockxTest;

my $node = stockx_node('payout');

sub sql { my ($q, $db) = @_; return $node->safe_psql($db // 'postgres', $q); }

# The SQLSTATE and hint of the error a statement raises ('no error' if none).
sub error_of { return sql_error($node, $_[0]); }

# ---------------------------------------------------------------- shipped rows
# 12 currencies x 5 levels x 3 categories (every category, watches, handbags)
is(sql(q{SELECT count(*) || '|' || count(*) FILTER (WHERE shipped AND valid_from = '2026-01-01'
			AND payment_fee_pct = 3 AND shipping = 0 AND source LIKE '%stockx_enrich 1.2%')
		  FROM stockx_fee_schedule}),
	'180|180', '180 shipped fee rows, 3% payment processing, no shipping, with their source');
is(sql(q{SELECT string_agg(seller_level || ':' || transaction_fee_pct, ',' ORDER BY seller_level)
		  FROM stockx_fee_schedule WHERE currency_code = 'USD' AND product_type IS NULL}),
	'1:9,2:8.5,3:8,4:7.5,5:7', 'transaction fee by seller level');
is(sql(q{SELECT count(*) FROM stockx_fee_schedule
		  WHERE (product_type = 'watches' AND transaction_fee_pct <> 9.9)
			 OR (product_type = 'handbags' AND transaction_fee_pct <> 14.5)}),
	0, 'watches 9.9% and handbags 14.5% at every level');
is(sql(q{SELECT string_agg(currency_code || ':' || minimum_fee, ',' ORDER BY currency_code)
		  FROM stockx_fee_schedule WHERE seller_level = 1 AND product_type IS NULL}),
	'AUD:7.50,CAD:7.00,CHF:4.50,EUR:0,GBP:0,HKD:45,JPY:800,KRW:7500,MXN:100,NZD:16,SGD:7.00,USD:0',
	'minimum fee by currency (none shipped for EUR, GBP, USD)');
is(sql(q{SELECT count(*) FROM stockx_fee_schedule
		  WHERE currency_code IN ('EUR', 'GBP', 'USD') AND source NOT LIKE '%add a row%'}),
	0, 'the rows without a minimum say a user should add one');

# ---------------------------------------------------------------- (a) stockx_payout
my @cases = (
	# USD 200, level 1: 9% = 18.00, 3% = 6.00; 24.00 >= minimum 0 -> 176.00
	[ q{stockx_payout(200, 1, 'USD')}, '176.00', 'USD 200 at level 1' ],
	# same with every default (USD, level of the unset setting = 1, now)
	[ q{stockx_payout(200)}, '176.00', 'defaults: USD, level 1, now' ],
	# currency code and category are trimmed and case-folded
	[ q{stockx_payout(200, 1, ' usd ')}, '176.00', 'currency code in lower case' ],
	# CAD 30, level 1: 2.70 + 0.90 = 3.60 < minimum 7.00 -> 30 - 7.00 = 23.00
	[ q{stockx_payout(30, 1, 'CAD')}, '23.00', 'CAD 30: the minimum fee wins' ],
	# CAD 5, level 1: 0.45 + 0.15 = 0.60 < 7.00 -> 5 - 7.00 = -2.00 (not
	# floored at 0: the seller would owe it)
	[ q{stockx_payout(5, 1, 'CAD')}, '-2.00', 'CAD 5: a negative payout is returned as computed' ],
	# JPY 12345, level 2: 8.5% = 1049.325 -> 1049, 3% = 370.35 -> 370;
	# 1419 >= 800 -> 12345 - 1419 = 10926
	[ q{stockx_payout(12345, 2, 'JPY')}, '10926', 'JPY rounds each fee to whole yen' ],
	# JPY 12350, level 1: 9% = 1111.5 -> 1112, 3% = 370.5 -> 371 (half away
	# from zero; half-even would give 370) -> 12350 - 1483 = 10867
	[ q{stockx_payout(12350, 1, 'JPY')}, '10867', 'JPY halves round away from zero' ],
	# USD 100.50, level 1: 9% = 9.045 -> 9.05, 3% = 3.015 -> 3.02 -> 12.07
	# -> 88.43.  Half-even would take 9.04 + 3.02 (88.44), truncation 9.04 +
	# 3.01 (88.45), rounding the sum 12.06 (88.44).
	[ q{stockx_payout(100.50, 1, 'USD')}, '88.43', 'USD half cents round away from zero, fee by fee' ],
	# KRW 100000, level 1: 9000 + 3000 = 12000 >= 7500 -> 88000
	[ q{stockx_payout(100000, 1, 'KRW')}, '88000', 'KRW 100000' ],
	# KRW 50000, level 1: 4500 + 1500 = 6000 < 7500 -> 42500
	[ q{stockx_payout(50000, 1, 'KRW')}, '42500', 'KRW 50000: the minimum fee wins' ],
	# USD 300, level 5: 7% = 21.00, 3% = 9.00 -> 270.00
	[ q{stockx_payout(300, 5, 'USD')}, '270.00', 'USD 300 at level 5' ],
	# EUR 180, level 3: 8% = 14.40, 3% = 5.40 -> 160.20
	[ q{stockx_payout(180, 3, 'EUR')}, '160.20', 'EUR 180 at level 3' ],
	# watches, USD 1000, level 1: 9.9% = 99.00, 3% = 30.00 -> 871.00
	[ q{stockx_payout(1000, 1, 'USD', now(), 'watches')}, '871.00', 'a watch: 9.9%' ],
	# watches at level 5: the exception has one rate for every level -> 871.00
	[ q{stockx_payout(1000, 5, 'USD', now(), ' Watches ')}, '871.00', 'a watch at level 5: still 9.9%' ],
	# handbags, EUR 500, level 3: 14.5% = 72.50, 3% = 15.00 -> 412.50
	[ q{stockx_payout(500, 3, 'EUR', now(), 'handbags')}, '412.50', 'a handbag: 14.5%' ],
	# a category without rows of its own takes the rows for every category
	[ q{stockx_payout(200, 1, 'USD', now(), 'sneakers')}, '176.00', 'sneakers: the general rates' ],
	[ q{stockx_payout(NULL, 1, 'USD') IS NULL}, 't', 'NULL amount: NULL' ],
);
for my $c (@cases)
{
	my ($expr, $want, $name) = @$c;
	is(sql("SELECT $expr"), $want, "$name: $want");
}

# NULL level: the setting stockx_enrich.seller_level.  Level 4, USD 200:
# 7.5% = 15.00, 3% = 6.00 -> 179.00
is(sql(q{SET stockx_enrich.seller_level = 4; SELECT stockx_payout(200, NULL, 'USD')}),
	'179.00', 'NULL level takes SET stockx_enrich.seller_level (4): 179.00');
is(sql(q{SET stockx_enrich.seller_level = 4; SELECT stockx_payout(200, 1, 'USD')}),
	'176.00', 'an explicit level overrides the setting');
like(error_of(q{SET stockx_enrich.seller_level = 6}), qr/^22023 /, 'the setting refuses level 6: 22023');

# A row a user adds: GBP level 2 from 2027-07-01, 8% + 3%, minimum 4.00,
# shipping 2.50.
sql(q{INSERT INTO stockx_fee_schedule (valid_from, seller_level, currency_code,
		transaction_fee_pct, payment_fee_pct, minimum_fee, shipping, source)
	  VALUES ('2027-07-01', 2, 'GBP', 8, 3, 4.00, 2.50, 'added by 082_payout')});
my @dated = (
	# the day before (UTC), shipped row: 8.50 + 3.00 = 11.50 -> 88.50
	[ q{stockx_payout(100, 2, 'GBP', '2027-06-30 23:59:59+00')}, '88.50', 'GBP 100 the day before: shipped rates' ],
	# from its date: 8.00 + 3.00 = 11.00; 100 - 11.00 - 2.50 = 86.50
	[ q{stockx_payout(100, 2, 'GBP', '2027-07-01 00:00:00+00')}, '86.50', 'GBP 100 from valid_from: the new row' ],
	# 00:30 at UTC+1 is still 2027-06-30 in UTC -> shipped row, 88.50
	[ q{stockx_payout(100, 2, 'GBP', '2027-07-01 00:30:00+01')}, '88.50', 'the date is taken in UTC' ],
	# GBP 20 under the new row: 1.60 + 0.60 = 2.20 < 4.00 -> 20 - 4.00 - 2.50 = 13.50
	[ q{stockx_payout(20, 2, 'GBP', '2027-07-02 00:00:00+00')}, '13.50', 'GBP 20: the new minimum and shipping' ],
	# GBP 20 under the shipped row: 1.70 + 0.60 = 2.30 (minimum 0) -> 17.70
	[ q{stockx_payout(20, 2, 'GBP', '2027-06-01 00:00:00+00')}, '17.70', 'GBP 20 before: shipped row' ],
	# other levels keep the shipped rows: level 1, 9.00 + 3.00 -> 88.00
	[ q{stockx_payout(100, 1, 'GBP', '2027-07-02 00:00:00+00')}, '88.00', 'other levels are not affected' ],
	# a watch keeps its category row (shipped) although a later row for every
	# category exists: 9.90 + 3.00 = 12.90 -> 87.10
	[ q{stockx_payout(100, 2, 'GBP', '2027-07-02 00:00:00+00', 'watches')}, '87.10',
	  'a category row wins over a later row for every category' ],
);
for my $c (@dated)
{
	my ($expr, $want, $name) = @$c;
	is(sql("SELECT $expr"), $want, "$name: $want");
}

# errors
like(error_of(q{SELECT stockx_payout(-1, 1, 'USD')}), qr/^22023 /, 'a negative amount: 22023');
like(error_of(q{SELECT stockx_payout(10, 6, 'USD')}), qr/^22023 /, 'level 6: 22023');
like(error_of(q{SELECT stockx_payout(10, 0, 'USD')}), qr/^22023 /, 'level 0: 22023');
like(error_of(q{SELECT stockx_payout(10, 1, 'XXX')}), qr/^P0002 /, 'currency XXX: P0002');
like(error_of(q{SELECT stockx_payout(10, 1, 'USD', '2025-12-31 23:59:59+00')}),
	qr/^P0002 Insert a row into public\.stockx_fee_schedule/,
	'a date before every row: P0002, with a hint to insert a row');
my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT stockx_payout(-1, 1, 'USD')");
like($err, qr/ERROR:  22023: sale amount must not be negative.*\nHINT:  /s,
	'psql shows the 22023 error with a hint');

# the table refuses what stockx_payout could not use
like(error_of(q{INSERT INTO stockx_fee_schedule (valid_from, seller_level, currency_code, transaction_fee_pct, payment_fee_pct)
				VALUES ('2027-01-01', 1, 'XXX', 9, 3)}), qr/^23514 /, 'unknown currency refused');
like(error_of(q{INSERT INTO stockx_fee_schedule (valid_from, seller_level, currency_code, transaction_fee_pct, payment_fee_pct)
				VALUES ('2027-01-01', 6, 'USD', 9, 3)}), qr/^23514 /, 'level 6 refused');
like(error_of(q{INSERT INTO stockx_fee_schedule (valid_from, seller_level, currency_code, transaction_fee_pct, payment_fee_pct)
				VALUES ('2027-01-01', 1, 'USD', -1, 3)}), qr/^23514 /, 'a negative fee refused');
like(error_of(q{INSERT INTO stockx_fee_schedule (valid_from, seller_level, currency_code, product_type, transaction_fee_pct, payment_fee_pct)
				VALUES ('2027-01-01', 1, 'USD', 'Watches', 9, 3)}), qr/^23514 /, 'a category not in lower case refused');
like(error_of(q{INSERT INTO stockx_fee_schedule (valid_from, seller_level, currency_code, transaction_fee_pct, payment_fee_pct)
				VALUES ('2026-01-01', 1, 'USD', 10, 3)}), qr/^23505 /, 'a second row for every category with the same key refused');

# ---------------------------------------------------------------- (b) the view
sql(q{
INSERT INTO stockx_product (sku, status, product_type, title) VALUES
	('PAYOUT-0001', 'enriched', 'sneakers', 'Payout Test Sneaker'),
	('PAYOUT-W001', 'enriched', 'watches', 'Payout Test Watch');
INSERT INTO stockx_variant (variant_id, sku, variant_value, currency_code) VALUES
	('00000000-0000-4000-8000-000000000821', 'PAYOUT-0001', '9.5', 'USD'),
	('00000000-0000-4000-8000-000000000822', 'PAYOUT-0001', '10', 'USD'),
	('00000000-0000-4000-8000-000000000823', 'PAYOUT-W001', 'OS', 'USD');
INSERT INTO stockx_market (variant_id, currency_code, lowest_ask, highest_bid, market_updated_at) VALUES
	('00000000-0000-4000-8000-000000000821', 'USD', 250, 200, '2026-11-01 12:00+00'),
	('00000000-0000-4000-8000-000000000821', 'EUR', 212, 180, '2026-11-01 12:00+00'),
	('00000000-0000-4000-8000-000000000822', 'USD', 260, NULL, '2026-11-01 12:00+00'),
	('00000000-0000-4000-8000-000000000823', 'USD', 1200, 1000, '2026-11-01 12:00+00');
});
my $view_q = q{SELECT string_agg(concat_ws('|', sku, title, size, currency_code, seller_level,
			coalesce(highest_bid::text, 'NULL'), coalesce(payout_sell_now::text, 'NULL'),
			lowest_ask, payout_at_lowest_ask,
			market_updated_at = '2026-11-01 12:00+00'),
			E'\n' ORDER BY sku, size, currency_code)
	  FROM stockx_variant_payout};
# level 1 (the setting's default):
#  USD bid 200:  18.00 + 6.00 = 24.00 -> 176.00; ask 250: 22.50 + 7.50 = 30.00 -> 220.00
#  EUR bid 180:  16.20 + 5.40 = 21.60 -> 158.40; ask 212: 19.08 + 6.36 = 25.44 -> 186.56
#  USD no bid -> NULL;                        ask 260: 23.40 + 7.80 = 31.20 -> 228.80
#  watch USD bid 1000: 99.00 + 30.00 -> 871.00; ask 1200: 118.80 + 36.00 = 154.80 -> 1045.20
is(sql($view_q), join("\n",
		'PAYOUT-0001|Payout Test Sneaker|10|USD|1|NULL|NULL|260|228.80|t',
		'PAYOUT-0001|Payout Test Sneaker|9.5|EUR|1|180|158.40|212|186.56|t',
		'PAYOUT-0001|Payout Test Sneaker|9.5|USD|1|200|176.00|250|220.00|t',
		'PAYOUT-W001|Payout Test Watch|OS|USD|1|1000|871.00|1200|1045.20|t'),
	'the view at level 1: one row per variant and currency, NULL bid gives NULL');
# level 5:
#  USD bid 200:  14.00 + 6.00 = 20.00 -> 180.00; ask 250: 17.50 + 7.50 = 25.00 -> 225.00
#  EUR bid 180:  12.60 + 5.40 = 18.00 -> 162.00; ask 212: 14.84 + 6.36 = 21.20 -> 190.80
#  USD no bid -> NULL;                        ask 260: 18.20 + 7.80 = 26.00 -> 234.00
#  the watch keeps 9.9%: 871.00 and 1045.20
is(sql("SET stockx_enrich.seller_level = 5; $view_q"), join("\n",
		'PAYOUT-0001|Payout Test Sneaker|10|USD|5|NULL|NULL|260|234.00|t',
		'PAYOUT-0001|Payout Test Sneaker|9.5|EUR|5|180|162.00|212|190.80|t',
		'PAYOUT-0001|Payout Test Sneaker|9.5|USD|5|200|180.00|250|225.00|t',
		'PAYOUT-W001|Payout Test Watch|OS|USD|5|1000|871.00|1200|1045.20|t'),
	'the view follows SET stockx_enrich.seller_level (5)');

# a member of pg_monitor reads the view
sql(q{CREATE ROLE payout_monitor LOGIN IN ROLE pg_monitor});
is($node->safe_psql('postgres', 'SELECT count(*), sum(payout_sell_now) FROM stockx_variant_payout',
		extra_params => [ '-U', 'payout_monitor' ]),
	'4|1205.40', 'pg_monitor reads the view (176.00 + 158.40 + 871.00 = 1205.40)');

# the products are of no use to the dump below
sql(q{DELETE FROM stockx_product WHERE sku LIKE 'PAYOUT-%'});

# ---------------------------------------------------------------- (c) pg_dump
my ($dump, $dump_err);
IPC::Run::run([ 'pg_dump', '--data-only', '-t', 'public.stockx_fee_schedule',
		'-d', $node->connstr('postgres') ],
	'>', \$dump, '2>', \$dump_err)
  or die "pg_dump: $dump_err";
my ($copy) = $dump =~ /^COPY public\.stockx_fee_schedule .*? FROM stdin;\n(.*?)^\\\.$/ms;
ok(defined $copy, 'the data-only dump has the fee schedule');
my @rows = grep { length } split /\n/, $copy // '';
is(scalar @rows, 1, 'one row dumped: the shipped rows are left out');
like($rows[0] // '', qr/^2027-07-01\t2\tGBP\t\\N\t8\t3\t4\.00\t2\.50\tadded by 082_payout\tf$/,
	'the row the user added is dumped');

# a restore has the shipped rows (from CREATE EXTENSION) and the user's row
my $tmp = File::Temp->newdir();
my $file = "$tmp/postgres.sql";
$node->command_ok([ 'pg_dump', '-f', $file, '-d', $node->connstr('postgres') ], 'pg_dump of the database');
sql('CREATE DATABASE payout_restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $file,
		'-d', $node->connstr('payout_restored') ], 'the dump restores');
is(sql(q{SELECT count(*) FILTER (WHERE shipped) || '|' || count(*) FILTER (WHERE NOT shipped)
		   FROM stockx_fee_schedule}, 'payout_restored'),
	'180|1', 'restored: 180 shipped rows and the user\'s row, once each');
is(sql(q{SELECT stockx_payout(100, 2, 'GBP', '2027-07-01 00:00:00+00')}, 'payout_restored'),
	'86.50', 'restored: the user\'s row is in force (86.50)');

$node->stop;
done_testing();
