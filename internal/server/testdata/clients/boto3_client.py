"""Drives an Owl server with an unmodified boto3, as a user would.

Usage: boto3_client.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY ZIP NAME

Creates NAME from ZIP, waits for it with boto3's waiters, invokes it (a
success and a function error), updates its configuration, lists, reads it
back, invokes a missing function and deletes NAME. Prints one JSON object
with what each step answered; the Go test asserts on it. Any unexpected
exception propagates: a traceback and a non-zero exit.
"""

import base64
import json
import sys

import owl_client

endpoint, key_id, secret, zip_path, name = sys.argv[1:6]
client = owl_client.client(endpoint, key_id, secret)
out = {}

with open(zip_path, "rb") as f:
    code = f.read()
r = client.create_function(
    FunctionName=name,
    Runtime="provided.al2023",
    Role="arn:aws:iam::000000000000:role/owl",
    Handler="bootstrap",
    Code={"ZipFile": code},
    Environment={"Variables": {"FROM": "boto3"}},
)
out["create"] = {k: r.get(k) for k in ("FunctionName", "FunctionArn", "State", "CodeSha256", "MemorySize", "Timeout")}
client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})

r = client.invoke(FunctionName=name, Payload=json.dumps({"name": "boto3"}), LogType="Tail")
out["invoke"] = {
    "status": r["StatusCode"],
    "payload": r["Payload"].read().decode(),
    "functionError": r.get("FunctionError"),
    "version": r.get("ExecutedVersion"),
    "log": base64.b64decode(r.get("LogResult", "")).decode(),
}
r = client.invoke(FunctionName=name, Payload=b'{"action":"error"}')
out["invokeError"] = {
    "status": r["StatusCode"],
    "functionError": r.get("FunctionError"),
    "payload": json.loads(r["Payload"].read()),
}

r = client.update_function_configuration(FunctionName=name, MemorySize=256, Timeout=9)
client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
r = client.invoke(FunctionName=name, Payload=b'{"action":"env"}')
env = dict(kv.split("=", 1) for kv in json.loads(r["Payload"].read()))
out["afterUpdate"] = {"memory": env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), "from": env.get("FROM")}

out["list"] = [f["FunctionName"] for page in client.get_paginator("list_functions").paginate() for f in page["Functions"]]
r = client.get_function(FunctionName=name)
out["get"] = {"CodeSha256": r["Configuration"]["CodeSha256"], "MemorySize": r["Configuration"]["MemorySize"],
              "Timeout": r["Configuration"]["Timeout"], "State": r["Configuration"]["State"],
              "LastUpdateStatus": r["Configuration"]["LastUpdateStatus"], "RepositoryType": r["Code"]["RepositoryType"]}

try:
    client.invoke(FunctionName="no-such-function", Payload=b"{}")
    out["missing"] = "invoked"
except client.exceptions.ResourceNotFoundException as e:
    out["missing"] = {"code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"],
                      "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}

client.delete_function(FunctionName=name)
try:
    client.get_function(FunctionName=name)
    out["deleted"] = False
except client.exceptions.ResourceNotFoundException:
    out["deleted"] = True

print(json.dumps(out))
