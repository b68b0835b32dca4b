# Trust no role but the owner (issue 15, items 1-4, 6 and 7).
#
# A role created with nothing but LOGIN (and the TEMP every role has by
# default) tries what an attacker would:
#  (1) every SECURITY DEFINER function of the extension, with its ACL: none
#      executable by PUBLIC, each with a pinned search_path; no trigger
#      function executable by PUBLIC; the 1.2 escalation (stockx_run_ended
#      attached to the attacker's temp table, running a pg_temp function
#      as the owner) fails and the attacker is no superuser afterwards; a
#      trigger function attached elsewhere by its owner refuses to run;
#  (2) the history upkeep has no entry point for the attacker, and the
#      maintenance function is refused;
#  (3) holding the advisory-lock keys 1.2 serialized on does not stop a run;
#  (4) a client of the shared budget that keeps its transaction open after
#      stockx_enrich_report() and stockx_enrich_acquire() (psycopg2's
#      default) stalls no worker;
#  (6) a listener of stockx_enrich hears an event's id and kind only, and
#      cannot read the event;
#  (7) stockx_events_since() loses nothing when two writers commit out of
#      id order (the documented `event_id > last` does).
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use StockxTest;

my $node = stockx_node('trust', requests_per_second => 50);
admin_reset();

sub sql { return $node->safe_psql('postgres', $_[0]); }

# psql as $role: ($rc, $stdout, $stderr), errors with their SQLSTATE
sub as_role
{
	my ($role, $q) = @_;
	return $node->psql('postgres', "\\set VERBOSITY verbose\n$q", extra_params => [ '-U', $role ]);
}

sql(q{CREATE ROLE attacker LOGIN;
	CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
	CREATE ROLE budget_client LOGIN;
	GRANT EXECUTE ON FUNCTION stockx_enrich_acquire(int), stockx_enrich_report(int, text)
	   TO budget_client});

# ---------------------------------------------------------------- (1)
my $members = q{
	FROM pg_proc p
	JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'stockx_enrich'};
my $public_execute = q{EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
	WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')};
my $definers = sql(qq{SELECT string_agg(p.proname || ' public=' || $public_execute
		|| ' path=' || coalesce(array_to_string(p.proconfig, ';') ~ 'search_path=pg_catalog, pg_temp', false),
		E'\\n' ORDER BY p.proname) $members WHERE p.prosecdef});
note "SECURITY DEFINER functions:\n$definers";
is($definers, join("\n",
		'stockx_enrich_acquire public=false path=true',
		'stockx_enrich_report public=false path=true',
		'stockx_price_history_maintain public=false path=true'),
	'the SECURITY DEFINER functions are these three, none executable by PUBLIC, each with its search_path');
is(sql(qq{SELECT count(*) $members WHERE p.prosecdef AND $public_execute}), 0,
	'no SECURITY DEFINER function of the extension is executable by PUBLIC');
my @triggers = split /\n/, sql(qq{SELECT p.proname $members
	WHERE p.prorettype = 'trigger'::regtype ORDER BY 1});
ok(@triggers > 0, 'the extension has trigger functions: ' . join(', ', @triggers));
is(sql(qq{SELECT string_agg(p.proname, ', ') $members
	WHERE p.prorettype = 'trigger'::regtype AND $public_execute}), '',
	'none of them is executable by PUBLIC');

# the attacker attaches each of them to a temp table of its own
for my $f (@triggers)
{
	my ($rc, $out, $err) = as_role('attacker', qq{
		CREATE TEMP TABLE t (run_id bigint, finished_at timestamptz);
		CREATE TRIGGER t_$f AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION public.$f()});
	like($err, qr/42501: permission denied for function (public\.)?$f\b/, "the attacker may not attach $f() to its table");
}

# the 1.2 escalation, step by step
my ($rc, $out, $err) = as_role('attacker', q{
	CREATE TEMP TABLE stockx_run (run_id bigint, stop_reason text, started_at timestamptz,
		finished_at timestamptz, workers int, processed bigint, enriched bigint, not_found bigint,
		failed bigint, requests bigint, responses_429 bigint, retries bigint);
	CREATE FUNCTION pg_temp.stockx_enrich_limiter_state() RETURNS SETOF record
		LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'ALTER ROLE attacker SUPERUSER'; END $$;
	CREATE TABLE pg_temp.stockx_event (kind text, payload jsonb);
	CREATE TRIGGER escalate AFTER UPDATE OF finished_at ON pg_temp.stockx_run
		FOR EACH ROW EXECUTE FUNCTION public.stockx_run_ended();
	INSERT INTO pg_temp.stockx_run (run_id, stop_reason) VALUES (1, 'quota');
	UPDATE pg_temp.stockx_run SET finished_at = now()});
isnt($rc, 0, 'the escalation of 1.2 fails');
is(sql(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'}), 'f', 'the attacker is no superuser');

# the owner attaches the cascade function to another table: it refuses to run
sql(q{CREATE TABLE not_ours (sku text);
	CREATE TRIGGER misplaced AFTER DELETE ON not_ours REFERENCING OLD TABLE AS old_rows
		FOR EACH STATEMENT EXECUTE FUNCTION stockx_cascade();
	INSERT INTO not_ours VALUES ('X')});
($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nDELETE FROM not_ours");
like($err, qr/42809: stockx_cascade\(\) fires only on the tables stockx_product and stockx_variant/,
	'a trigger function of the extension checks the table it fires on (42809)');

# ---------------------------------------------------------------- (2)
($rc, $out, $err) = as_role('attacker', 'SELECT stockx_price_history_upkeep()');
like($err, qr/42883: function stockx_price_history_upkeep\(\) does not exist/,
	'the history upkeep has no SQL entry point (1.2 let anyone run it and hold its locks)');
($rc, $out, $err) = as_role('attacker', 'SELECT * FROM stockx_price_history_maintain()');
like($err, qr/42501: permission denied for function (public\.)?stockx_price_history_maintain/,
	'and the maintenance function is refused to the attacker');

# ---------------------------------------------------------------- (3)
my $ext = sql(q{SELECT oid FROM pg_extension WHERE extname = 'stockx_enrich'});
my $locker = $node->background_psql('postgres', extra_params => [ '-U', 'attacker' ]);
# the keys of 1.2: claims (class "SXEC", the extension's OID) and the upkeep
$locker->query_safe("SELECT pg_advisory_lock(1398293827, $ext);
	SELECT pg_advisory_lock(hashtext('stockx_price_history_maintain'))");
enqueue_skus($node, map { sprintf('TRUST-%04d', $_) } 1 .. 3);
my $t0 = time();
my $run = sql('SELECT stockx_enrich_start()');
is(wait_run($node, $run, 30), 'done', 'a run ends done while the attacker holds the advisory locks of 1.2');
is(sql(q{SELECT count(*) FROM stockx_product WHERE sku LIKE 'TRUST-%' AND status = 'enriched'}), 3,
	'and its rows are enriched');
note sprintf('run took %.1f s', time() - $t0);
$locker->quit;

# ---------------------------------------------------------------- (4)
my $client = $node->background_psql('postgres', extra_params => [ '-U', 'budget_client' ]);
$client->query_safe('BEGIN');
$client->query_safe('SELECT stockx_enrich_acquire(10000)');
$client->query_safe('SELECT stockx_enrich_report(200)');
# the transaction stays open while a run writes (and persists the quota) at every commit
enqueue_skus($node, map { sprintf('TRUST-C%03d', $_) } 1 .. 12);
$run = sql('SELECT stockx_enrich_start()');
is(wait_run($node, $run, 30), 'done',
	'a run ends done while a budget client keeps its transaction open after report()');
is(sql(q{SELECT count(*) FROM stockx_product WHERE sku LIKE 'TRUST-C%' AND status = 'enriched'}), 12,
	'every row written');
is(sql(q{SELECT requests FROM stockx_quota WHERE day = (now() AT TIME ZONE 'UTC')::date}),
	sql('SELECT requests_today FROM stockx_enrich_limiter'),
	"the workers persisted the quota, the client's request included");
$client->query_safe('COMMIT');
$client->quit;

# ---------------------------------------------------------------- (6)
my $listener = $node->background_psql('postgres', extra_params => [ '-U', 'attacker' ]);
$listener->query_safe('LISTEN stockx_enrich');
enqueue_skus($node, 'TRUST-L001');
$run = sql('SELECT stockx_enrich_start()');
wait_run($node, $run, 30);
my $heard = '';
poll_until(10, sub { $heard .= $listener->query_safe('SELECT 1'); $heard =~ /payload/ });
$listener->quit;
my ($payload) = $heard =~ /Asynchronous notification "stockx_enrich" with payload "(.*)" received/;
my $event = sql(qq{SELECT event_id FROM stockx_event WHERE kind = 'run_end' AND payload->>'run_id' = '$run'});
is($payload, qq({"event_id": $event, "kind": "run_end"}),
	'a listener with no grants hears the id and kind of an event, nothing more');
($rc, $out, $err) = as_role('attacker', 'SELECT * FROM stockx_events_since(NULL)');
like($err, qr/42501: permission denied for table stockx_event/, 'and may not read the event');
($rc, $out, $err) = as_role('watcher', qq{SELECT kind FROM stockx_events_since(NULL) WHERE event_id = $event});
is($out, 'run_end', 'a member of pg_monitor reads it');

# ---------------------------------------------------------------- (7)
# a consumer caught up: the last cursor of everything there is
my @all = split /\n/, sql(q{SELECT next_cursor FROM stockx_events_since(NULL, 100000)});
my $cursor = $all[-1];
my $naive_last = sql('SELECT max(event_id) FROM stockx_event');

my $writer_a = $node->background_psql('postgres');
$writer_a->query_safe(q{BEGIN; SELECT txid_current();
	INSERT INTO stockx_event (kind, payload) VALUES ('run_end', '{"writer": "A"}')});
sql(q{INSERT INTO stockx_event (kind, payload) VALUES ('run_end', '{"writer": "B"}')});

# read while A is still open: B committed, A not
my @seen;
my $read = sub {
	my $rows = sql(qq{SELECT payload->>'writer', next_cursor FROM stockx_events_since('$cursor')});
	for (split /\n/, $rows)
	{
		my ($w, $c) = split /\|/;
		push @seen, $w;
		$cursor = $c;
	}
};
$read->();
my $naive = sql(qq{SELECT string_agg(payload->>'writer', ' ' ORDER BY event_id) FROM stockx_event
	WHERE event_id > $naive_last});
is($naive, 'B', 'a naive reader (event_id > last) sees B first');
$naive_last = sql('SELECT max(event_id) FROM stockx_event');
is(join(' ', @seen), '', 'stockx_events_since() returns nothing while an older transaction is open');

$writer_a->query_safe('COMMIT');
$writer_a->quit;
$read->();
is(join(' ', @seen), 'A B', 'after A commits, both, in commit-safe order');
is(sql(qq{SELECT count(*) FROM stockx_event WHERE event_id > $naive_last}), 0,
	'while the naive reader has skipped A for ever');
$read->();
is(join(' ', @seen), 'A B', 'and a further read returns nothing again');

($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT * FROM stockx_events_since('nonsense')");
like($err, qr/22023: invalid event cursor 'nonsense'/, 'a malformed cursor is refused (22023)');
($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT * FROM stockx_events_since('99999999999/1')");
like($err, qr/22023: event cursor '99999999999\/1' is ahead of this server/,
	'a cursor from another server (a restored dump) is refused with a hint');

$node->stop;
done_testing();
