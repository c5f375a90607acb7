"""Drives Owl's event invoke config operations with an unmodified boto3.

Usage: boto3_eventconfig.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY NAME SINK_ARN

Puts, updates, reads, lists and deletes NAME's event invoke config, and
tries an out-of-range value. Prints one JSON object with what each step
answered; the Go test asserts on it.
"""

import datetime
import json
import sys

from botocore.exceptions import ClientError

import owl_client

endpoint, key_id, secret, name, sink = sys.argv[1:6]
client = owl_client.client(endpoint, key_id, secret)


def shape(r):
    """The config as boto3 parsed it; LastModified's age in seconds."""
    r = {k: v for k, v in r.items() if k != "ResponseMetadata"}
    if isinstance(r.get("LastModified"), datetime.datetime):
        r["LastModified"] = (datetime.datetime.now(datetime.timezone.utc) - r["LastModified"]).total_seconds()
    return r


def error(call, **kw):
    try:
        call(**kw)
        return None
    except ClientError as e:
        return {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}


out = {}
out["put"] = shape(client.put_function_event_invoke_config(
    FunctionName=name, MaximumRetryAttempts=1, MaximumEventAgeInSeconds=300,
    DestinationConfig={"OnFailure": {"Destination": sink}}))
out["update"] = shape(client.update_function_event_invoke_config(
    FunctionName=name, MaximumRetryAttempts=0,
    DestinationConfig={"OnSuccess": {"Destination": "arn:owl:nats:::orders.done"}}))
out["get"] = shape(client.get_function_event_invoke_config(FunctionName=name, Qualifier="$LATEST"))
out["list"] = [shape(c) for c in client.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]]
out["bad"] = error(client.put_function_event_invoke_config, FunctionName=name, MaximumRetryAttempts=5)
client.delete_function_event_invoke_config(FunctionName=name)
out["missing"] = error(client.get_function_event_invoke_config, FunctionName=name)
print(json.dumps(out))
