"""Reads an InvokeWithResponseStream answer with an unmodified boto3
(botocore's event stream parser, the one the AWS CLI v2 uses too).

Usage: boto3_stream.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY NAME PAYLOAD

Prints one JSON object: the status, executed version and content type,
the PayloadChunk payloads (as text) in order, and InvokeComplete's fields.
"""

import json
import sys

import owl_client

endpoint, key_id, secret, name, payload = sys.argv[1:6]
client = owl_client.client(endpoint, key_id, secret)
r = client.invoke_with_response_stream(FunctionName=name, Payload=payload.encode(), LogType="Tail")
out = {
    "status": r["StatusCode"],
    "version": r.get("ExecutedVersion"),
    "contentType": r.get("ResponseStreamContentType"),
    "chunks": [],
    "complete": None,
}
for event in r["EventStream"]:
    if "PayloadChunk" in event:
        out["chunks"].append(event["PayloadChunk"]["Payload"].decode())
    elif "InvokeComplete" in event:
        out["complete"] = event["InvokeComplete"]
print(json.dumps(out))
