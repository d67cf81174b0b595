-- One transaction of a recordUsageBatch as PostgreSQL alone runs it: the reads and writes
-- the service makes for one transaction's events (lock the accounts, read their grants,
-- probe the idempotency keys, insert the usage records and ledger entries, update the
-- grants and accounts), with the rows made in the database and no client work. :r picks
-- a range of teams, as the service splits a batch. Every event draws 0.00001 USD from
-- its team's one prepaid grant, so the ledger audit afterwards still balances.
\set r random(0, :last_range)
\set k random(1, 1000000000000000000)
BEGIN;
SELECT * FROM credit_accounts
  WHERE team_id = ANY((SELECT teams FROM bench_batch_ranges WHERE r = :r)::uuid[])
  ORDER BY team_id FOR UPDATE;
SELECT * FROM credit_grants
  WHERE team_id = ANY((SELECT teams FROM bench_batch_ranges WHERE r = :r)::uuid[])
  AND remaining > 0;
SELECT u.id FROM bench_batch_ranges AS b, unnest(b.teams) WITH ORDINALITY AS k(team_id, i)
  JOIN usage_records AS u
    ON u.team_id = k.team_id AND u.idempotency_key = 'ceiling-' || :k || '-' || k.i
  WHERE b.r = :r;
WITH ev AS (
  SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
          || substr(md5(random()::text), 1, 20))::uuid AS id,  -- time-ordered, as UUIDv7
         t.team_id, t.grant_id, 'ceiling-' || :k || '-' || t.i AS key
  FROM bench_batch_ranges AS b, unnest(b.teams, b.grants) WITH ORDINALITY AS t(team_id, grant_id, i)
  WHERE b.r = :r
), u AS (
  INSERT INTO usage_records (id, idempotency_key, amount, from_free, from_promotional,
    from_prepaid, invoiced, description, occurred_at, occurred_at_given, period, created_at,
    team_id)
  SELECT id, key, 1000, 0, 0, 1000, 0, NULL, now(), false,
    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'), now(), team_id
  FROM ev
), g AS (
  UPDATE credit_grants AS g SET remaining = g.remaining - 1000 FROM ev WHERE g.id = ev.grant_id
), l AS (
  INSERT INTO ledger_entries (kind, amount, created_at, grant_id, team_id, usage_id)
  SELECT 'USAGE', -1000, now(), grant_id, team_id, id FROM ev
)
UPDATE credit_accounts AS a SET prepaid = a.prepaid - 1000, updated_at = now()
  FROM ev WHERE a.team_id = ev.team_id;
COMMIT;
