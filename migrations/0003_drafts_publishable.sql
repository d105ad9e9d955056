-- Whether the draft's content was complete (publishable) when last written,
-- as the service's domain rules decided then. It lets one statement read and
-- publish a draft in a single round trip. Only ever an optimisation: the
-- service writes it with every content change, and a draft whose flag is
-- false (such as every draft written before this migration) is read and
-- checked before publishing, as before.
ALTER TABLE drafts ADD COLUMN publishable boolean NOT NULL DEFAULT false;
