-- Settings: defaults at StockX's real limits, checks, and masked secrets.
SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'stockx_enrich.%' ORDER BY name;

SHOW stockx_enrich.requests_per_second;
SHOW stockx_enrich.daily_request_limit;
SHOW stockx_enrich.max_response_bytes;

-- reloadable settings cannot be changed per session
SET stockx_enrich.requests_per_second = 5;

-- bad values are refused with a reason
ALTER SYSTEM SET stockx_enrich.currency_code = 'XYZ';
ALTER SYSTEM SET stockx_enrich.currency_code = 'USD, EUR, usd';
ALTER SYSTEM SET stockx_enrich.currency_code = 'USD EUR';
-- a list of currencies: market data in each, the first on the products
ALTER SYSTEM SET stockx_enrich.currency_code = 'USD', 'eur';
ALTER SYSTEM RESET stockx_enrich.currency_code;
-- the seller level of the payout view is each session's own
SET stockx_enrich.seller_level = 3;
SHOW stockx_enrich.seller_level;
SET stockx_enrich.seller_level = 6;
RESET stockx_enrich.seller_level;
ALTER SYSTEM SET stockx_enrich.api_base_url = 'ftp://example.com/v2';
ALTER SYSTEM SET stockx_enrich.requests_per_second = 0;

-- secrets: set for superusers, masked for everybody else
CREATE ROLE stockx_reader IN ROLE pg_monitor;
SET ROLE stockx_reader;
SHOW stockx_enrich.api_key;
SELECT name, setting FROM pg_settings WHERE name = 'stockx_enrich.api_key';
RESET ROLE;
SHOW stockx_enrich.api_key;
-- a role outside pg_read_all_settings does not see it at all
CREATE ROLE stockx_app;
SET ROLE stockx_app;
SHOW stockx_enrich.api_key;
SELECT count(*) FROM pg_settings WHERE name = 'stockx_enrich.api_key';
RESET ROLE;
DROP ROLE stockx_app;
DROP ROLE stockx_reader;

-- the prefix is reserved: a typo is an error, not a silent placeholder
SET stockx_enrich.no_such_setting = 1;
