"""The change feed from Python: WatchEventChanges and ListEventChanges over
gRPC, and the relay's JetStream stream with nats-py, its CloudEvents headers
and protobuf payload decoded."""

import asyncio
import re
import time
import uuid

import grpc
import nats
import pytest
from google.protobuf import timestamp_pb2
from test_draft_publisher import complete_draft_request

TIMEOUT = 10
# Bounds the wait for every change, the scheduled PUBLISHED included.
FEED_TIMEOUT = 20
# A scheduled publish goes live this long after it is made.
SCHEDULED_IN = 2
STREAM = "DRAFTPUBLISHER_EVENTS"
RFC_3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def publish(pb, stub, organization_id, publish_at=None):
    """Creates a complete draft and publishes it; returns the event id."""
    draft = stub.CreateDraft(complete_draft_request(pb, organization_id), timeout=TIMEOUT).draft
    request = pb.messages.PublishDraftRequest(organization_id=organization_id, draft_id=draft.id)
    if publish_at is not None:
        request.publish_at.CopyFrom(publish_at)
    return stub.PublishDraft(request, timeout=TIMEOUT).event_id


def watch(pb, stub, organization_id, count):
    """The first `count` changes WatchEventChanges sends, then cancels."""
    call = stub.WatchEventChanges(
        pb.messages.WatchEventChangesRequest(organization_id=organization_id), timeout=FEED_TIMEOUT
    )
    changes = []
    try:
        for response in call:
            changes.append(response.change)
            if len(changes) == count:
                break
    except grpc.RpcError as error:
        pytest.fail(f"WatchEventChanges ended after {[c.id for c in changes]}: {error.code()}")
    finally:
        call.cancel()
    return changes


@pytest.fixture(scope="module")
def feed(pb, server_addr):
    """An organisation with an immediate and a scheduled publication, and the
    three changes they make as WatchEventChanges delivered them."""
    organization_id = str(uuid.uuid4())
    with grpc.insecure_channel(server_addr) as channel:
        stub = pb.services.DraftPublisherStub(channel)
        immediate = publish(pb, stub, organization_id)
        publish_at = timestamp_pb2.Timestamp()
        publish_at.FromSeconds(int(time.time()) + SCHEDULED_IN + 1)
        scheduled = publish(pb, stub, organization_id, publish_at)
        changes = watch(pb, stub, organization_id, 3)
    return {
        "organization_id": organization_id,
        "expected": {f"{immediate}.published", f"{scheduled}.scheduled", f"{scheduled}.published"},
        "scheduled": scheduled,
        "publish_at": publish_at,
        "changes": changes,
    }


def test_watch_delivers_each_change_once_as_list_does(pb, connect, feed):
    changes, scheduled = feed["changes"], feed["scheduled"]

    ids = [change.id for change in changes]
    assert sorted(ids) == sorted(feed["expected"])
    assert ids.index(f"{scheduled}.scheduled") < ids.index(f"{scheduled}.published")
    for change in changes:
        kind = change.id.rsplit(".", 1)[1]
        assert change.type == pb.messages.EventChangeType.Value(f"EVENT_CHANGE_TYPE_{kind.upper()}")
        assert change.event.organization_id == feed["organization_id"]
        assert change.cursor
    went_live = changes[ids.index(f"{scheduled}.published")]
    assert went_live.change_time.ToNanoseconds() >= feed["publish_at"].ToNanoseconds()
    assert went_live.event.status == pb.messages.EVENT_STATUS_PUBLISHED

    stub = connect()
    listed = stub.ListEventChanges(
        pb.messages.ListEventChangesRequest(organization_id=feed["organization_id"]), timeout=TIMEOUT
    )
    assert [(c.id, c.cursor) for c in listed.changes] == [(c.id, c.cursor) for c in changes]
    assert listed.next_cursor == changes[-1].cursor
    rest = stub.ListEventChanges(
        pb.messages.ListEventChangesRequest(
            organization_id=feed["organization_id"], after_cursor=changes[0].cursor
        ),
        timeout=TIMEOUT,
    )
    assert [c.id for c in rest.changes] == ids[1:]


async def stream_messages(nats_url, organization_id, change_ids):
    """Every message of the organisation in the stream, read by an ordered
    consumer until the expected changes arrived and none is pending."""
    connection = await nats.connect(nats_url)
    try:
        subscription = await connection.jetstream().subscribe(
            f"draftpublisher.v1.events.{organization_id}.>", stream=STREAM, ordered_consumer=True
        )
        messages, deadline = [], time.monotonic() + FEED_TIMEOUT
        while True:
            seen = {message.headers.get("Nats-Msg-Id") for message in messages}
            if change_ids <= seen and messages[-1].metadata.num_pending == 0:
                return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the stream holds {sorted(seen)}, expected {sorted(change_ids)}")
            try:
                messages.append(await subscription.next_msg(timeout=remaining))
            except nats.errors.TimeoutError:
                pass
    finally:
        await connection.close()


def test_stream_holds_one_cloudevent_per_change(pb, nats_url, feed):
    organization_id = feed["organization_id"]

    messages = asyncio.run(stream_messages(nats_url, organization_id, feed["expected"]))

    ids = [message.headers["Nats-Msg-Id"] for message in messages]
    assert sorted(ids) == sorted(feed["expected"]), "one message per change, no other"
    watched = {change.id: change for change in feed["changes"]}
    for message in messages:
        headers, change_id = message.headers, message.headers["Nats-Msg-Id"]
        change = pb.messages.EventChange.FromString(message.data)
        kind = change_id.rsplit(".", 1)[1]
        assert message.subject == f"draftpublisher.v1.events.{organization_id}.{kind}"
        assert headers["ce-specversion"] == "1.0"
        assert headers["ce-id"] == change_id == change.id
        assert headers["ce-source"] == f"/draftpublisher/v1/organizations/{organization_id}"
        assert headers["ce-type"] == f"draftpublisher.v1.event.{kind}"
        assert headers["ce-subject"] == change.event.id
        assert headers["Content-Type"] == "application/protobuf"
        assert RFC_3339.match(headers["ce-time"]), headers["ce-time"]
        ce_time = timestamp_pb2.Timestamp()
        ce_time.FromJsonString(headers["ce-time"])
        assert ce_time == change.change_time
        # The same change as the feed's, its cursor included.
        assert change == watched[change_id]
