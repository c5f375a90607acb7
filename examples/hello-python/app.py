# Example function for Owl's Python runtime:
#   ./owl deploy examples/hello-python --name hello-py --runtime python3.11 --handler app.handler
#   ./owl invoke hello-py --data '{"name":"Owl"}'


def handler(event, context):
    return {"message": f"Hello, {event.get('name', 'world')}!"}
