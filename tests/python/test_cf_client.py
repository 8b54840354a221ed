"""Drive our traffic controller with the independent PyPI `cloudfoundry-client`.

Run by tests/tc_python_client.rs, which starts two dopplers, the traffic
controller in `uaa` mode and a fake Cloud Controller + UAA, and keeps pushing
`live-N` log lines for the app while this script runs.

Environment:
  CF_TARGET        fake Cloud Controller root (serves `/`, `/oauth/token`)
  APP_GUID         the app whose logs are read
  RECENT_EXPECTED  `|`-separated log lines recent logs must return, in order

Checks, each through the client's own code path:
  1. recent logs (HTTP multipart, `Authorization: Bearer <token>`);
  2. the v1 app stream (WebSocket, `Bearer <token>`): three `live-` lines;
  3. the RLP gateway (`/v2/read` SSE, bare token): a data event whose batch
     holds a `live-` log of the app, decoded from the gateway JSON.
Prints `OK <summary>` and exits 0 on success; any failure raises.
"""

import asyncio
import base64
import json
import os
import sys

from cloudfoundry_client.client import CloudFoundryClient
from cloudfoundry_client.dropsonde.envelope_pb2 import Envelope

TARGET = os.environ["CF_TARGET"]
APP = os.environ["APP_GUID"]
RECENT_EXPECTED = os.environ["RECENT_EXPECTED"].split("|")


def check_recent_logs(client):
    envelopes = list(client.doppler.recent_logs(APP))
    texts = []
    for env in envelopes:
        assert env.eventType == Envelope.LogMessage, env
        assert env.logMessage.app_id == APP, env
        texts.append(env.logMessage.message.decode())
    # live-N lines may be interleaved; the pre-pushed ones come first, in order.
    pre = [t for t in texts if not t.startswith("live-")]
    assert pre == RECENT_EXPECTED, (pre, RECENT_EXPECTED)
    return len(envelopes)


def check_stream(client):
    seen = []
    for env in client.doppler.stream_logs(APP):
        if env.eventType != Envelope.LogMessage:
            continue
        assert env.logMessage.app_id == APP, env
        text = env.logMessage.message.decode()
        if text.startswith("live-"):
            seen.append(text)
        if len(seen) >= 3:
            break
    return seen


async def check_rlp(client):
    async for chunk in client.rlpgateway.stream_logs(APP, params={"shard_id": "python"}):
        if not chunk.startswith(b"data:"):
            continue
        doc = json.loads(chunk[len(b"data: "):].split(b"\n\n")[0])
        for env in doc["batch"]:
            assert env["source_id"] == APP, env
            payload = base64.b64decode(env["log"]["payload"]).decode()
            assert isinstance(env["timestamp"], str), "64-bit integers are strings"
            if payload.startswith("live-"):
                return payload
    raise AssertionError("RLP stream ended without a live- log")


def main():
    client = CloudFoundryClient(TARGET, client_id="cf-user", client_secret="secret")
    client.init_with_client_credentials()
    n_recent = check_recent_logs(client)
    streamed = check_stream(client)
    rlp = asyncio.run(asyncio.wait_for(check_rlp(client), 30))
    print(f"OK recent={n_recent} stream={','.join(streamed)} rlp={rlp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
