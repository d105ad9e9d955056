// The change feed from Node: WatchEventChanges and ListEventChanges through
// the client of ./client.mjs, and the relay's JetStream stream with the npm
// `nats` package, its CloudEvents headers and protobuf payload (decoded with
// protobufjs from the same proto) checked.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';

import { connect as connectNats } from 'nats';
import protobuf from 'protobufjs';

import { MESSAGE_OPTIONS, PROTO_FILE, PROTO_ROOT, call, completeDraftRequest, connect } from './client.mjs';

// Bounds the wait for every change, the scheduled PUBLISHED included.
const FEED_TIMEOUT_MS = 20_000;
// A scheduled publish goes live this long after it is made.
const SCHEDULED_IN_S = 2;
const STREAM = 'DRAFTPUBLISHER_EVENTS';
const RFC_3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;

const natsUrl = process.env.NATS_URL;
assert.ok(natsUrl, 'NATS_URL is not set: run scripts/tests.d/node-client.sh');

// EventChange as protobufjs reads it from a NATS message's payload.
const EventChange = new protobuf.Root()
  .loadSync(path.join(PROTO_ROOT, PROTO_FILE), { keepCase: true })
  .lookupType('draftpublisher.v1.EventChange');

// Creates a complete draft and publishes it; returns the event id.
async function publish(client, organizationId, publishAt) {
  const { draft } = await call(client, 'CreateDraft', completeDraftRequest(organizationId));
  const request = { organization_id: organizationId, draft_id: draft.id, publish_at: publishAt };
  return (await call(client, 'PublishDraft', request)).event_id;
}

// The first `count` changes WatchEventChanges sends, then cancels.
function watch(client, organizationId, count) {
  return new Promise((resolve, reject) => {
    const changes = [];
    const stream = client.WatchEventChanges(
      { organization_id: organizationId },
      { deadline: Date.now() + FEED_TIMEOUT_MS },
    );
    stream.on('data', ({ change }) => {
      changes.push(change);
      if (changes.length === count) {
        resolve(changes);
        stream.cancel();
      }
    });
    stream.on('error', (error) => {
      if (changes.length < count) {
        reject(new Error(`WatchEventChanges ended after ${changes.map((c) => c.id)}: ${error.message}`));
      }
    });
  });
}

// ce-time as a google.protobuf.Timestamp, to compare with change_time exactly.
function rfc3339ToTimestamp(text) {
  const [, seconds, fraction = '', zone] = RFC_3339.exec(text) ?? assert.fail(`not RFC 3339: ${text}`);
  return {
    seconds: String(Date.parse(`${seconds}${zone}`) / 1000),
    nanos: Number(fraction.padEnd(9, '0')),
  };
}

// An organisation with an immediate and a scheduled publication, and the
// three changes they make as WatchEventChanges delivered them; made once.
let feedOnce;
function feed() {
  feedOnce ??= (async () => {
    const organizationId = randomUUID();
    const client = connect();
    const immediate = await publish(client, organizationId);
    const publishAt = { seconds: String(Math.floor(Date.now() / 1000) + SCHEDULED_IN_S + 1), nanos: 0 };
    const scheduled = await publish(client, organizationId, publishAt);
    return {
      organizationId,
      expected: [`${immediate}.published`, `${scheduled}.scheduled`, `${scheduled}.published`].sort(),
      scheduled,
      publishAt,
      changes: await watch(client, organizationId, 3),
    };
  })();
  return feedOnce;
}

test('Watch delivers each change once, as List does', { timeout: 2 * FEED_TIMEOUT_MS }, async () => {
  const { organizationId, expected, scheduled, publishAt, changes } = await feed();

  const ids = changes.map((change) => change.id);
  assert.deepEqual([...ids].sort(), expected);
  assert.ok(ids.indexOf(`${scheduled}.scheduled`) < ids.indexOf(`${scheduled}.published`), `${ids}`);
  for (const change of changes) {
    const kind = change.id.slice(change.id.lastIndexOf('.') + 1);
    assert.equal(change.type, `EVENT_CHANGE_TYPE_${kind.toUpperCase()}`);
    assert.equal(change.event.organization_id, organizationId);
    assert.ok(change.cursor);
  }
  const wentLive = changes[ids.indexOf(`${scheduled}.published`)];
  assert.ok(BigInt(wentLive.change_time.seconds) >= BigInt(publishAt.seconds), 'PUBLISHED before publish_at');
  assert.equal(wentLive.event.status, 'EVENT_STATUS_PUBLISHED');

  const listed = await call(connect(), 'ListEventChanges', { organization_id: organizationId });
  assert.deepEqual(
    listed.changes.map((c) => [c.id, c.cursor]),
    changes.map((c) => [c.id, c.cursor]),
  );
  assert.equal(listed.next_cursor, changes.at(-1).cursor);
  const rest = await call(connect(), 'ListEventChanges', {
    organization_id: organizationId,
    after_cursor: changes[0].cursor,
  });
  assert.deepEqual(
    rest.changes.map((c) => c.id),
    ids.slice(1),
  );
});

// Every message of the organisation in the stream, read by an ordered
// consumer until the expected changes arrived and none is pending.
async function streamMessages(organizationId, expected) {
  const nats = await connectNats({ servers: natsUrl });
  try {
    // One subject as a string: the client sends it as filter_subject, which
    // every JetStream server knows (a list is sent as filter_subjects, which
    // servers before 2.10, Debian's 2.9 among them, ignore).
    const consumer = await nats.jetstream().consumers.get(STREAM, {
      filterSubjects: `draftpublisher.v1.events.${organizationId}.>`,
    });
    const messages = [];
    const deadline = Date.now() + FEED_TIMEOUT_MS;
    for (;;) {
      const seen = new Set(messages.map((message) => message.headers.get('Nats-Msg-Id')));
      if (expected.every((id) => seen.has(id)) && messages.at(-1).info.pending === 0) {
        return messages;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        assert.fail(`the stream holds ${[...seen].sort()}, expected ${expected}`);
      }
      // `expires` is at least 1 s: the wait may run that far past the deadline.
      const message = await consumer.next({ expires: Math.max(1_000, remaining) });
      if (message) {
        messages.push(message);
      }
    }
  } finally {
    await nats.close();
  }
}

// The test's own timeout bounds a client call that would wait for ever.
test('the stream holds one CloudEvent per change', { timeout: 2 * FEED_TIMEOUT_MS }, async () => {
  const { organizationId, expected, changes } = await feed();

  const messages = await streamMessages(organizationId, expected);

  const ids = messages.map((message) => message.headers.get('Nats-Msg-Id'));
  assert.deepEqual([...ids].sort(), expected, 'one message per change, no other');
  const watched = new Map(changes.map((change) => [change.id, change]));
  for (const message of messages) {
    const headers = message.headers;
    const changeId = headers.get('Nats-Msg-Id');
    const kind = changeId.slice(changeId.lastIndexOf('.') + 1);
    const change = EventChange.toObject(EventChange.decode(message.data), MESSAGE_OPTIONS);
    assert.equal(message.subject, `draftpublisher.v1.events.${organizationId}.${kind}`);
    assert.equal(headers.get('ce-specversion'), '1.0');
    assert.equal(headers.get('ce-id'), changeId);
    assert.equal(change.id, changeId);
    assert.equal(headers.get('ce-source'), `/draftpublisher/v1/organizations/${organizationId}`);
    assert.equal(headers.get('ce-type'), `draftpublisher.v1.event.${kind}`);
    assert.equal(headers.get('ce-subject'), change.event.id);
    assert.equal(headers.get('Content-Type'), 'application/protobuf');
    assert.deepEqual(rfc3339ToTimestamp(headers.get('ce-time')), change.change_time);
    // The same change as the feed's, its cursor included.
    assert.deepEqual(change, watched.get(changeId));
  }
});

