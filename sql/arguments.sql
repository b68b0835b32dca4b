-- Argument checks and refusals of the SQL API.
SELECT stockx_enrich_start(0);
SELECT stockx_enrich_start(5);
SELECT stockx_enrich_start(1, 0);
-- no credentials in this instance
SELECT stockx_enrich_start();
SELECT stockx_enrich_stop(-1);
-- nothing to stop
SELECT stockx_enrich_stop(100);
SELECT stockx_enrich_wait(12345, 10);
SELECT stockx_enrich_wait(1, -5);
SELECT stockx_enrich_requeue('pending');
SELECT stockx_enrich_requeue(NULL);

-- a role without EXECUTE may not start runs
CREATE ROLE stockx_app;
SET ROLE stockx_app;
SELECT stockx_enrich_start();
SELECT stockx_enrich_stop();
RESET ROLE;
DROP ROLE stockx_app;
