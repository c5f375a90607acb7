// The orders example's report: a schedule runs it; it calls notify
// synchronously with what it found.
const endpoint = process.env.AWS_ENDPOINT_URL_LAMBDA;

export const handler = async (event) => {
  const resp = await fetch(`${endpoint}/2015-03-31/functions/notify/invocations`, {
    method: "POST",
    headers: { Authorization: "Bearer " + process.env.AWS_SESSION_TOKEN },
    body: JSON.stringify({ message: `report at ${event.time}` }),
  });
  return { notified: resp.status };
};
