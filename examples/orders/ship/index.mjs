// The orders example's shipping: a subject trigger on orders.created hands
// it batches of orders; for each it tells notify, asynchronously, through
// Lambda's Invoke on the function's own endpoint.
const endpoint = process.env.AWS_ENDPOINT_URL_LAMBDA;
const auth = { Authorization: "Bearer " + process.env.AWS_SESSION_TOKEN };

export const handler = async (event) => {
  for (const record of event.Records) {
    const order = JSON.parse(record.body);
    console.log(`shipping order ${order.id}: ${order.qty} x ${order.item}`);
    await fetch(`${endpoint}/2015-03-31/functions/notify/invocations`, {
      method: "POST",
      headers: { ...auth, "X-Amz-Invocation-Type": "Event" },
      body: JSON.stringify({ message: `order ${order.id} shipped` }),
    });
  }
};
