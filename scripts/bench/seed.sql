-- Seeds drafts for the pgbench side of scripts/bench.sh, in the service's
-- own schema. Draft number n gets the id 00000000-0000-4000-8000-<n, 12
-- digits> so that pgbench scripts can name drafts by number; its event, once
-- published, 00000000-0000-4000-9000-<n>. psql variables: first, last (the
-- numbers to create) and publish (true: also publish them, in bulk, for the
-- fast-path script).
BEGIN;

INSERT INTO drafts (id, organization_id, title, description, location,
                    starts_at, ends_at, create_time, update_time)
SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
       '00000000-0000-4000-a000-000000000001',
       'Rust meetup', 'Talks and pizza', 'Berlin',
       '2030-03-17 17:46:40+00', '2030-03-17 19:46:40+00', now(), now()
FROM generate_series(:first, :last) AS n;

INSERT INTO events (id, organization_id, draft_id, title, description, location,
                    starts_at, ends_at, publish_time, create_time)
SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid, d.organization_id, d.id,
       d.title, d.description, d.location, d.starts_at, d.ends_at, now(), now()
FROM generate_series(:first, :last) AS n
JOIN drafts d ON d.id = ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid
WHERE :publish;

UPDATE drafts d
SET status = 'published', event_id = e.id, publish_time = e.publish_time, version = d.version + 1
FROM events e
WHERE e.draft_id = d.id AND d.event_id IS NULL AND :publish;

COMMIT;
ANALYZE drafts;
ANALYZE events;
