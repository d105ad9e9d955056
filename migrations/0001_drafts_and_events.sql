-- Drafts and the events they are published as.
--
-- Exactly-once publication is the database's job, not the code's:
--   I1 at most one event per draft:  UNIQUE (events.draft_id)  -- the constraint
--      a second publish of the same draft violates (SQLSTATE 23505);
--   I2 at most one draft per event:  UNIQUE (drafts.event_id);
--   I3 a draft has an event_id exactly when it is published, and that event
--      points back to it; no orphan events: the CHECK on drafts plus the two
--      composite foreign keys below, one each way. The events -> drafts one is
--      checked at commit, so a transaction may insert the event first and link
--      the draft second, but can never commit an event its draft does not name.
--
-- "Scheduled" is not stored: a published draft whose publish_time is still in
-- the future is scheduled, so no background job has to flip anything.

CREATE TABLE drafts (
    id                  uuid        PRIMARY KEY,
    organization_id     uuid        NOT NULL,
    -- Idempotency key of CreateDraft and a fingerprint of that first
    -- request's content, to tell a retry from a reuse with other content.
    request_id          uuid,
    request_fingerprint bytea,
    title               text        NOT NULL DEFAULT '',
    description         text        NOT NULL DEFAULT '',
    location            text        NOT NULL DEFAULT '',
    starts_at           timestamptz,
    ends_at             timestamptz,
    status              text        NOT NULL DEFAULT 'draft',
    event_id            uuid,
    version             bigint      NOT NULL DEFAULT 1,
    create_time         timestamptz NOT NULL,
    update_time         timestamptz NOT NULL,
    publish_time        timestamptz,

    CONSTRAINT drafts_status_check CHECK (status IN ('draft', 'published')),
    CONSTRAINT drafts_published_iff_linked CHECK (
        (status = 'published') = (event_id IS NOT NULL)
        AND (event_id IS NULL) = (publish_time IS NULL)
    ),
    CONSTRAINT drafts_version_positive CHECK (version >= 1),
    CONSTRAINT drafts_ends_not_before_starts CHECK (ends_at >= starts_at),
    CONSTRAINT drafts_request_fingerprint_with_id CHECK (
        (request_id IS NULL) = (request_fingerprint IS NULL)
    ),
    CONSTRAINT drafts_event_id_key UNIQUE (event_id),
    CONSTRAINT drafts_organization_request_id_key UNIQUE (organization_id, request_id),
    -- Target of the events -> drafts foreign keys.
    CONSTRAINT drafts_id_organization_key UNIQUE (id, organization_id),
    CONSTRAINT drafts_id_event_id_key UNIQUE (id, event_id)
);

-- ListDrafts pages by (create_time, id) within one organisation.
CREATE INDEX drafts_organization_create_time_id_idx
    ON drafts (organization_id, create_time, id);

CREATE TABLE events (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL,
    draft_id        uuid        NOT NULL,
    title           text        NOT NULL,
    description     text        NOT NULL,
    location        text        NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    publish_time    timestamptz NOT NULL,
    create_time     timestamptz NOT NULL,

    CONSTRAINT events_ends_after_starts CHECK (ends_at > starts_at),
    -- I1: one event per draft.
    CONSTRAINT events_draft_id_key UNIQUE (draft_id),
    CONSTRAINT events_id_draft_id_key UNIQUE (id, draft_id),
    -- The event belongs to its draft's organisation.
    CONSTRAINT events_draft_organization_fkey FOREIGN KEY (draft_id, organization_id)
        REFERENCES drafts (id, organization_id),
    -- I3: the draft names this event (checked at commit).
    CONSTRAINT events_draft_links_back_fkey FOREIGN KEY (draft_id, id)
        REFERENCES drafts (id, event_id)
        DEFERRABLE INITIALLY DEFERRED
);

-- I3: a draft's event is an event of that draft.
ALTER TABLE drafts
    ADD CONSTRAINT drafts_event_links_back_fkey FOREIGN KEY (event_id, id)
        REFERENCES events (id, draft_id);
