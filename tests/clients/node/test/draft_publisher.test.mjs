// DraftPublisher from Node: @grpc/grpc-js with the proto loaded at run time
// by @grpc/proto-loader, against the server scripts/tests.d/node-client.sh
// started (TEST_SERVER_ADDR). Error details are decoded from the
// grpc-status-details-bin trailer with google/rpc/{status,error_details}.proto
// from google-proto-files.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import googleProtoFiles from 'google-proto-files';
import protobuf from 'protobufjs';

const PUBLISHERS = 10;
const TIMEOUT_MS = 10_000;

const serverAddr = process.env.TEST_SERVER_ADDR;
assert.ok(serverAddr, 'TEST_SERVER_ADDR is not set: run scripts/tests.d/node-client.sh');

const protoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../proto');
const definition = protoLoader.loadSync('draftpublisher/v1/draft_publisher.proto', {
  includeDirs: [protoRoot],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
});
const { DraftPublisher } = grpc.loadPackageDefinition(definition).draftpublisher.v1;

const googleRpc = protobuf.loadSync([
  googleProtoFiles.getProtoPath('rpc', 'status.proto'),
  googleProtoFiles.getProtoPath('rpc', 'error_details.proto'),
]);

const clients = [];
after(() => clients.forEach((client) => client.close()));

// A client on a connection of its own (grpc-js shares connections between
// clients unless each has a local subchannel pool).
function connect() {
  const client = new DraftPublisher(serverAddr, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  clients.push(client);
  return client;
}

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + TIMEOUT_MS }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

function completeDraftRequest(organizationId) {
  return {
    organization_id: organizationId,
    title: 'Rust meetup',
    location: 'Berlin',
    starts_at: { seconds: Date.parse('2030-05-01T18:00:00Z') / 1000, nanos: 0 },
    ends_at: { seconds: Date.parse('2030-05-01T21:00:00Z') / 1000, nanos: 0 },
  };
}

// The google.rpc.Status of a failed call, its details unpacked by type name.
function richStatus(error) {
  const [bytes] = error.metadata.get('grpc-status-details-bin');
  assert.ok(bytes, `no grpc-status-details-bin trailer in ${error}`);
  const status = googleRpc.lookupType('google.rpc.Status').decode(bytes);
  const details = {};
  for (const any of status.details) {
    // protobufjs keeps google.protobuf.Any's field names as in its proto.
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    details[typeName] = googleRpc.lookupType(typeName).decode(any.value);
  }
  return { code: status.code, details };
}

test('ten concurrent publishes of one draft create one event', async () => {
  const organizationId = randomUUID();
  const { draft } = await call(connect(), 'CreateDraft', completeDraftRequest(organizationId));
  const publishers = Array.from({ length: PUBLISHERS }, connect);

  const answers = await Promise.all(
    publishers.map((client) =>
      call(client, 'PublishDraft', { organization_id: organizationId, draft_id: draft.id }),
    ),
  );

  const eventIds = new Set(answers.map((answer) => answer.event_id));
  assert.equal(eventIds.size, 1, `event ids: ${[...eventIds]}`);
  assert.equal(answers.filter((answer) => !answer.already_published).length, 1);
  const [eventId] = eventIds;
  const { event } = await call(connect(), 'GetEvent', { organization_id: organizationId, event_id: eventId });
  assert.equal(event.draft_id, draft.id);
  assert.equal(event.status, 'EVENT_STATUS_PUBLISHED');
});

test('an invalid call carries ErrorInfo and BadRequest details', async () => {
  const request = { ...completeDraftRequest(randomUUID()), title: 'x'.repeat(201) };

  const error = await call(connect(), 'CreateDraft', request).then(
    () => assert.fail('CreateDraft accepted a 201-character title'),
    (error) => error,
  );

  assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
  const { code, details } = richStatus(error);
  assert.equal(code, grpc.status.INVALID_ARGUMENT);
  assert.equal(details['google.rpc.ErrorInfo'].domain, 'draftpublisher.v1');
  assert.equal(details['google.rpc.ErrorInfo'].reason, 'INVALID_REQUEST');
  const violations = details['google.rpc.BadRequest'].fieldViolations;
  assert.deepEqual(
    violations.map((violation) => violation.field),
    ['title'],
  );
  assert.match(violations[0].description, /200/);
});
