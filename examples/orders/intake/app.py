# The HTTP side of the orders example: POST /orders (an Owl route) takes an
# order and publishes it on the NATS subject orders.created, through Owl's
# publish on the function's own endpoint (AWS_ENDPOINT_URL_LAMBDA, with
# the environment's session token).
import json, os, urllib.request, uuid


def publish(subject, data):
    req = urllib.request.Request(
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] + "/owl/v1/events/publish",
        data=json.dumps({"Subject": subject, "Data": data}).encode(),
        headers={"Authorization": "Bearer " + os.environ["AWS_SESSION_TOKEN"]},
        method="POST")
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def handler(event, context):
    order = json.loads(event.get("body") or "{}")
    order["id"] = str(uuid.uuid4())[:8]
    publish("orders.created", order)
    return {"statusCode": 202, "headers": {"content-type": "application/json"},
            "body": json.dumps({"accepted": order["id"]})}
