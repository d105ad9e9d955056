-- (c) The publish fast path: the service's read of a published draft with
-- its event (src/store/events.rs), on a random one of the drafts 1..published.
\set n random(1, :published)
SELECT d.id, d.organization_id, d.title, d.description, d.location,
       d.starts_at, d.ends_at, d.event_id, d.version,
       d.create_time, d.update_time, d.publish_time,
       e.id AS ev_id, e.organization_id AS ev_organization_id,
       e.draft_id AS ev_draft_id, e.title AS ev_title,
       e.description AS ev_description, e.location AS ev_location,
       e.starts_at AS ev_starts_at, e.ends_at AS ev_ends_at,
       e.publish_time AS ev_publish_time, e.create_time AS ev_create_time
FROM drafts d
LEFT JOIN events e ON e.id = d.event_id
WHERE d.id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
  AND d.organization_id = '00000000-0000-4000-a000-000000000001';
