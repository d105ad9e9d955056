-- The event-change feed: an outbox written by the statement that creates the
-- event, read by the feed (ListEventChanges, WatchEventChanges) and the NATS
-- relay.
--
-- Invariants:
--   C1 every event has its changes, written in the transaction that creates
--      it: PUBLISHED always, SCHEDULED exactly when publish_time was in the
--      future at creation (publish_time > create_time);
--   C2 no change without its event (the foreign key);
--   C3 one order: `position` is assigned only to committed changes, by one
--      sequencer transaction at a time (under an advisory lock), each pass
--      numbering after the highest position already visible. A change is
--      read only once positioned, so a reader's cursor can never pass a
--      change that commits later. A PUBLISHED change is positioned no earlier
--      than its change_time (the event's publish_time);
--   C4 `sent_time` is set only after NATS JetStream acknowledged the change.

CREATE TABLE event_changes (
    event_id        uuid        NOT NULL REFERENCES events (id),
    -- 1 = SCHEDULED, 2 = PUBLISHED, as EventChangeType in the proto.
    kind            smallint    NOT NULL,
    organization_id uuid        NOT NULL,
    -- create_time (SCHEDULED) or publish_time (PUBLISHED) of the event.
    change_time     timestamptz NOT NULL,
    position        bigint,
    sent_time       timestamptz,

    CONSTRAINT event_changes_pkey PRIMARY KEY (event_id, kind),
    CONSTRAINT event_changes_kind_check CHECK (kind IN (1, 2)),
    CONSTRAINT event_changes_position_key UNIQUE (position),
    CONSTRAINT event_changes_sent_after_positioned CHECK (sent_time IS NULL OR position IS NOT NULL)
);

-- The sequencer's work: committed changes waiting for a position.
CREATE INDEX event_changes_unpositioned_idx
    ON event_changes (change_time)
    WHERE position IS NULL;

-- The feed: one organisation's changes in order.
CREATE INDEX event_changes_organization_position_idx
    ON event_changes (organization_id, position)
    WHERE position IS NOT NULL;

-- The relay's work: positioned changes not yet acknowledged by NATS.
CREATE INDEX event_changes_unsent_idx
    ON event_changes (position)
    WHERE sent_time IS NULL AND position IS NOT NULL;

-- Backfill: events published before this migration get their changes too,
-- so the feed is complete from the first event. The sequencer positions them
-- (past ones at once, future PUBLISHED ones at their time).
INSERT INTO event_changes (event_id, kind, organization_id, change_time)
SELECT id, 1, organization_id, create_time FROM events WHERE publish_time > create_time
UNION ALL
SELECT id, 2, organization_id, publish_time FROM events;
