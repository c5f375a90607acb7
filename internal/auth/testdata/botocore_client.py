"""Signs and sends requests to an Owl auth test server with botocore/boto3.

Usage: botocore_client.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY

Prints a JSON list of {"name", "status", "error_type"}: one entry per request,
error_type being the server's X-Amzn-ErrorType ("" on success).
"""

import json
import sys

import boto3
import botocore.auth
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.httpsession
import botocore.utils
from botocore.awsrequest import AWSRequest

endpoint, akid, secret = sys.argv[1:4]
results = []


def raw(name, method, path, query=None, body=b"", headers=None,
        key=akid, secret_key=secret, service="lambda"):
    """Signs with SigV4Auth directly, building the URL the way botocore's
    rest-json serializer does, and sends it with botocore's own HTTP session."""
    url = endpoint + path
    if query:
        url += "?" + botocore.utils.percent_encode_sequence(query)
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = botocore.credentials.Credentials(key, secret_key)
    botocore.auth.SigV4Auth(creds, service, "us-east-1").add_auth(req)
    resp = botocore.httpsession.URLLib3Session().send(req.prepare())
    results.append({"name": name, "status": resp.status_code,
                    "error_type": resp.headers.get("X-Amzn-ErrorType", "")})


def fn(name):
    return botocore.utils.percent_encode(name)  # non-greedy label, as serialize.py does


ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-fn"
raw("raw list", "GET", "/2015-03-31/functions")
raw("raw list paged", "GET", "/2015-03-31/functions", query=[("Marker", "x"), ("MaxItems", "2")])
raw("raw invoke", "POST", "/2015-03-31/functions/%s/invocations" % fn("my-fn"), body=b'{"a":1}')
raw("raw invoke $LATEST", "POST", "/2015-03-31/functions/%s/invocations" % fn("my-fn:$LATEST"),
    body=b'{"a":1}', headers={"X-Amz-Invocation-Type": "Event"})
raw("raw invoke arn", "POST", "/2015-03-31/functions/%s/invocations" % fn(ARN),
    query=[("Qualifier", "$LATEST")], body=b"{}")
raw("raw create", "POST", "/2015-03-31/functions", body=b'{"FunctionName":"f"}',
    headers={"Content-Type": "application/json"})
raw("raw wrong secret", "GET", "/2015-03-31/functions", secret_key="not-the-secret")
raw("raw unknown key", "GET", "/2015-03-31/functions", key="AKIAUNKNOWNUNKNOWN00")
raw("raw wrong service", "GET", "/2015-03-31/functions", service="s3")


def client(key=akid, secret_key=secret):
    return boto3.client(
        "lambda", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret_key,
        config=botocore.config.Config(retries={"total_max_attempts": 1}))


def call(name, op, **kwargs):
    try:
        op(**kwargs)
        results.append({"name": name, "status": 200, "error_type": ""})
    except botocore.exceptions.ClientError as e:
        meta = e.response["ResponseMetadata"]
        results.append({"name": name, "status": meta["HTTPStatusCode"],
                        "error_type": e.response["Error"]["Code"]})


c = client()
call("boto3 list_functions", c.list_functions, Marker="x", MaxItems=2)
call("boto3 get_function qualified", c.get_function, FunctionName="my-fn:$LATEST")
call("boto3 invoke arn", c.invoke, FunctionName=ARN, Qualifier="$LATEST", Payload=b'{"k":"v"}')
call("boto3 invoke event", c.invoke, FunctionName="my-fn", InvocationType="Event", Payload=b"{}")
call("boto3 wrong secret", client(secret_key="nope").list_functions)

json.dump(results, sys.stdout)
