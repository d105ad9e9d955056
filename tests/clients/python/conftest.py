"""Generates the DraftPublisher stubs from the proto with grpcio-tools into a
temporary folder (nothing generated is committed) and connects to the server
that scripts/tests.d/python-client.sh started (TEST_SERVER_ADDR), whose relay
sends its changes to the NATS server of NATS_URL."""

import importlib.resources
import os
import pathlib
import sys

import grpc
import pytest
from grpc_tools import protoc

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_FILE = "draftpublisher/v1/draft_publisher.proto"


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The generated modules: `pb.messages` (_pb2) and `pb.services` (_pb2_grpc)."""
    out = tmp_path_factory.mktemp("stubs")
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            PROTO_FILE,
        ]
    )
    assert status == 0, f"protoc failed with status {status}"
    sys.path.insert(0, str(out))
    from draftpublisher.v1 import draft_publisher_pb2, draft_publisher_pb2_grpc

    class Generated:
        messages = draft_publisher_pb2
        services = draft_publisher_pb2_grpc

    return Generated


@pytest.fixture(scope="session")
def server_addr():
    addr = os.environ.get("TEST_SERVER_ADDR")
    if not addr:
        pytest.fail("TEST_SERVER_ADDR is not set: run scripts/tests.d/python-client.sh")
    return addr


@pytest.fixture(scope="session")
def nats_url():
    url = os.environ.get("NATS_URL")
    if not url:
        pytest.fail("NATS_URL is not set: run scripts/tests.d/python-client.sh")
    return url


@pytest.fixture
def connect(pb, server_addr):
    """connect() -> a DraftPublisher stub on a channel of its own."""
    channels = []

    def connect():
        channel = grpc.insecure_channel(server_addr)
        grpc.channel_ready_future(channel).result(timeout=10)
        channels.append(channel)
        return pb.services.DraftPublisherStub(channel)

    yield connect
    for channel in channels:
        channel.close()
