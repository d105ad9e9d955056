-- (b) Publish as one statement, one round trip: the service's own publish
-- statement (src/store/events.rs) with the change it writes for the feed,
-- minus the version and completeness checks, returning the draft and its new
-- event. Drafts numbered as in naive.sql.
\set i :i + 1
\set n :base + :client_id * :per_client + :i
WITH draft AS (
    SELECT id, organization_id, title, description, location, starts_at, ends_at
    FROM drafts
    WHERE id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
      AND organization_id = '00000000-0000-4000-a000-000000000001' AND event_id IS NULL
), event AS (
    INSERT INTO events (id, organization_id, draft_id, title, description, location,
                        starts_at, ends_at, publish_time, create_time)
    SELECT ('00000000-0000-4000-9000-' || lpad(:n::text, 12, '0'))::uuid, organization_id, id,
           title, description, location, starts_at, ends_at, now(), now()
    FROM draft
    RETURNING *
), changes AS (
    INSERT INTO event_changes (event_id, kind, organization_id, change_time)
    SELECT id, 2, organization_id, publish_time FROM event
), linked AS (
    UPDATE drafts
    SET status = 'published', event_id = event.id, publish_time = event.publish_time,
        version = drafts.version + 1, update_time = now()
    FROM event
    WHERE drafts.id = event.draft_id
    RETURNING drafts.*
)
SELECT d.id, d.organization_id, d.title, d.description, d.location,
       d.starts_at, d.ends_at, d.event_id, d.version,
       d.create_time, d.update_time, d.publish_time,
       e.id AS ev_id, e.organization_id AS ev_organization_id,
       e.draft_id AS ev_draft_id, e.title AS ev_title,
       e.description AS ev_description, e.location AS ev_location,
       e.starts_at AS ev_starts_at, e.ends_at AS ev_ends_at,
       e.publish_time AS ev_publish_time, e.create_time AS ev_create_time
FROM linked d
JOIN event e ON e.id = d.event_id;
