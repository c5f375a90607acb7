# The end of both chains of the orders example: it is told what happened.
def handler(event, context):
    print("notify:", event.get("message"))
    return {"ok": True}
