"""DraftPublisher from Python, through stubs generated from the proto."""

import threading
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

WORKERS = 10
TIMEOUT = 10


def complete_draft_request(pb, organization_id):
    request = pb.messages.CreateDraftRequest(
        organization_id=organization_id, title="Rust meetup", location="Berlin"
    )
    request.starts_at.FromJsonString("2030-05-01T18:00:00Z")
    request.ends_at.FromJsonString("2030-05-01T21:00:00Z")
    return request


def test_ten_concurrent_publishes_create_one_event(pb, connect):
    organization_id = str(uuid.uuid4())
    draft = connect().CreateDraft(complete_draft_request(pb, organization_id), timeout=TIMEOUT).draft
    stubs = [connect() for _ in range(WORKERS)]
    start = threading.Barrier(WORKERS)
    answers, errors = [], []

    def publish(stub):
        start.wait()
        try:
            request = pb.messages.PublishDraftRequest(organization_id=organization_id, draft_id=draft.id)
            answers.append(stub.PublishDraft(request, timeout=TIMEOUT))
        except grpc.RpcError as error:
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(stub,)) for stub in stubs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(answers) == WORKERS
    event_ids = {answer.event_id for answer in answers}
    assert len(event_ids) == 1, event_ids
    assert [answer.already_published for answer in answers].count(False) == 1
    event = connect().GetEvent(
        pb.messages.GetEventRequest(organization_id=organization_id, event_id=event_ids.pop()),
        timeout=TIMEOUT,
    ).event
    assert event.draft_id == draft.id
    assert event.status == pb.messages.EVENT_STATUS_PUBLISHED


def test_invalid_call_carries_error_info_and_bad_request(pb, connect):
    request = complete_draft_request(pb, str(uuid.uuid4()))
    request.title = "x" * 201

    with pytest.raises(grpc.RpcError) as raised:
        connect().CreateDraft(request, timeout=TIMEOUT)

    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailers = dict(error.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    kinds = {detail.TypeName(): detail for detail in status.details}
    assert kinds["google.rpc.ErrorInfo"].Unpack(info)
    assert kinds["google.rpc.BadRequest"].Unpack(bad_request)
    assert info.domain == "draftpublisher.v1"
    assert info.reason == "INVALID_REQUEST"
    assert [violation.field for violation in bad_request.field_violations] == ["title"]
    assert "200" in bad_request.field_violations[0].description
