-- (a) The obvious hand-written publish: read the draft (the fast-path check),
-- then insert the event with the content read, its change for the feed (the
-- outbox row the service writes too) and link the draft, in an explicit
-- transaction. Six round trips. Each client publishes its own
-- drafts: number base + client_id * per_client + i (see seed.sql).
\set i :i + 1
\set n :base + :client_id * :per_client + :i
SELECT d.event_id, d.version, d.title, d.description, d.location, d.starts_at, d.ends_at
FROM drafts d
WHERE d.id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
  AND d.organization_id = '00000000-0000-4000-a000-000000000001'
\gset
BEGIN;
INSERT INTO events (id, organization_id, draft_id, title, description, location,
                    starts_at, ends_at, publish_time, create_time)
VALUES (('00000000-0000-4000-9000-' || lpad(:n::text, 12, '0'))::uuid,
        '00000000-0000-4000-a000-000000000001',
        ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid,
        :title, :description, :location, :starts_at, :ends_at, now(), now());
INSERT INTO event_changes (event_id, kind, organization_id, change_time)
VALUES (('00000000-0000-4000-9000-' || lpad(:n::text, 12, '0'))::uuid, 2,
        '00000000-0000-4000-a000-000000000001', now());
UPDATE drafts
SET status = 'published', event_id = ('00000000-0000-4000-9000-' || lpad(:n::text, 12, '0'))::uuid,
    publish_time = now(), version = version + 1, update_time = now()
WHERE id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
  AND version = :version AND event_id IS NULL;
COMMIT;
