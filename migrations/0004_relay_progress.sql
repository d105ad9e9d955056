-- The NATS relay's progress as one position instead of a mark on every
-- change. The relay sends changes in position order, one replica at a time
-- (under its advisory lock), and positions are given only to committed
-- changes, each pass after the highest already given; so the changes
-- JetStream has acknowledged are always every change up to some position.
-- One row holding that position replaces `sent_time`, whose marking
-- rewrote every change row (and its indexes) a third time.
--
-- Invariant C4 becomes: `relay_progress.position` advances only after NATS
-- JetStream acknowledged every change positioned up to it.
--
-- A relay of an earlier release fails on the dropped column and stops
-- sending (it logs and retries) until it is replaced; publishing and the feed
-- are unaffected.

CREATE TABLE relay_progress (
    -- One row: the CHECK and the key allow no second.
    only_row    boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    -- Every change positioned at or below it has been acknowledged.
    position    bigint      NOT NULL CHECK (position >= 0),
    update_time timestamptz NOT NULL
);

-- Sent changes were always a prefix of the positions (marked in the same
-- order and under the same lock): the progress is just below the first
-- positioned change not yet sent, or the last position when all were sent.
INSERT INTO relay_progress (position, update_time)
SELECT coalesce(
           (SELECT min(position) - 1 FROM event_changes
            WHERE sent_time IS NULL AND position IS NOT NULL),
           (SELECT max(position) FROM event_changes),
           0),
       now();

ALTER TABLE event_changes DROP CONSTRAINT event_changes_sent_after_positioned;
DROP INDEX event_changes_unsent_idx;
ALTER TABLE event_changes DROP COLUMN sent_time;
