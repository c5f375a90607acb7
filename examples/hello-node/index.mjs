// Example function for Owl's Node.js runtime (an ES module, async handler):
//   ./owl deploy examples/hello-node --name hello-node --runtime nodejs20.x --handler index.handler
//   ./owl invoke hello-node --data '{"name":"Owl"}'
export const handler = async (event) => {
  return { message: `Hello, ${event?.name ?? "world"}!` };
};
