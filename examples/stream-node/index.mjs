// Example of response streaming in Owl's Node.js runtime: each line reaches
// the caller as it is written, a fifth of a second apart, not when the
// handler ends.
//   ./owl deploy examples/stream-node --name stream-node --runtime nodejs20.x --handler index.handler
//   ./owl invoke stream-node --stream --data '{"lines":3}'
export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('text/plain');
  const lines = event?.lines ?? 3;
  for (let i = 1; i <= lines; i++) {
    responseStream.write(`line ${i} of ${lines}\n`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  responseStream.end();
});
