-- Feeding the queue.
SELECT stockx_enrich_enqueue(ARRAY['DD1391-100', 'CW2288-111', ' DD1391-100 ', 'A B&C#D+é']);
-- known SKUs are not queued twice
SELECT stockx_enrich_enqueue(ARRAY['DD1391-100', 'FZ5897-001']);
SELECT sku, status, attempts, next_attempt_at IS NULL AS due_now FROM stockx_product ORDER BY sku;

-- invalid SKUs name themselves and queue nothing
SELECT stockx_enrich_enqueue(ARRAY['OK-1', '   ']);
SELECT stockx_enrich_enqueue(ARRAY['OK-2', repeat('x', 101)]);
SELECT stockx_enrich_enqueue(ARRAY['OK-3', NULL]);
SELECT stockx_enrich_enqueue(NULL);
SELECT count(*) FROM stockx_product WHERE sku LIKE 'OK-%';

-- a plain INSERT queues too, and the table keeps the same rules
INSERT INTO stockx_product (sku) VALUES ('HQ4540');
\set VERBOSITY terse
INSERT INTO stockx_product (sku) VALUES ('');
\set VERBOSITY default
SELECT stockx_enrich_enqueue('{}');

SELECT status, products, leased FROM stockx_enrich_queue ORDER BY status;

-- requeue brings failed rows back
UPDATE stockx_product SET status = 'failed', attempts = 5, last_error = 'boom' WHERE sku = 'HQ4540';
SELECT stockx_enrich_requeue();
SELECT sku, status, attempts, last_error FROM stockx_product WHERE sku = 'HQ4540';
