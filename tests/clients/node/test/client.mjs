// The DraftPublisher client the Node tests share: @grpc/grpc-js with the
// proto loaded at run time by @grpc/proto-loader, against the server
// scripts/tests.d/node-client.sh started (TEST_SERVER_ADDR).

import assert from 'node:assert/strict';
import path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

export const TIMEOUT_MS = 10_000;

const serverAddr = process.env.TEST_SERVER_ADDR;
assert.ok(serverAddr, 'TEST_SERVER_ADDR is not set: run scripts/tests.d/node-client.sh');

export const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../proto');
export const PROTO_FILE = 'draftpublisher/v1/draft_publisher.proto';
// How messages look in JavaScript, for grpc-js and for protobufjs' toObject.
export const MESSAGE_OPTIONS = { longs: String, enums: String, defaults: true };
const definition = protoLoader.loadSync(PROTO_FILE, {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  ...MESSAGE_OPTIONS,
});
const { DraftPublisher } = grpc.loadPackageDefinition(definition).draftpublisher.v1;

const clients = [];
after(() => clients.forEach((client) => client.close()));

// A client on a connection of its own (grpc-js shares connections between
// clients unless each has a local subchannel pool).
export function connect() {
  const client = new DraftPublisher(serverAddr, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  clients.push(client);
  return client;
}

export function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + TIMEOUT_MS }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

export function completeDraftRequest(organizationId) {
  return {
    organization_id: organizationId,
    title: 'Rust meetup',
    location: 'Berlin',
    starts_at: { seconds: Date.parse('2030-05-01T18:00:00Z') / 1000, nanos: 0 },
    ends_at: { seconds: Date.parse('2030-05-01T21:00:00Z') / 1000, nanos: 0 },
  };
}
