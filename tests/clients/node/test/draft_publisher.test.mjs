// DraftPublisher from Node, through the client of ./client.mjs. Error
// details are decoded from the grpc-status-details-bin trailer with
// google/rpc/{status,error_details}.proto from google-proto-files.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import grpc from '@grpc/grpc-js';
import googleProtoFiles from 'google-proto-files';
import protobuf from 'protobufjs';

import { call, completeDraftRequest, connect } from './client.mjs';

const PUBLISHERS = 10;

const googleRpc = protobuf.loadSync([
  googleProtoFiles.getProtoPath('rpc', 'status.proto'),
  googleProtoFiles.getProtoPath('rpc', 'error_details.proto'),
]);

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
