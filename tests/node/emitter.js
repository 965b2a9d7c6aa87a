// Drives @socket.io/redis-emitter 5.1.0 (node-redis v4) from JSON lines on stdin,
// answering each with {"ok":true} once its PUBLISH has reached Redis.
"use strict";

const { Emitter } = require("@socket.io/redis-emitter");
const { connectRedis, parseFlags, decodeBin, printLine, readJsonLines } = require("./wire");

const flags = parseFlags(process.argv.slice(2), ["redis", "key"]);

/** The BroadcastOperator selected by to / except / volatile / compress. */
function operator(emitter, op) {
  let target = emitter.of(op.nsp || "/").to(op.to || []);
  if (op.except && op.except.length) target = target.except(op.except);
  if (op.volatile) target = target.volatile;
  if (op.compress !== undefined) target = target.compress(!!op.compress);
  return target;
}

function apply(emitter, op) {
  switch (op.op) {
    case "emit":
      operator(emitter, op).emit(op.event, ...decodeBin(op.args || []));
      return;
    case "socketsJoin":
      operator(emitter, op).socketsJoin(op.rooms);
      return;
    case "socketsLeave":
      operator(emitter, op).socketsLeave(op.rooms);
      return;
    case "disconnectSockets":
      operator(emitter, op).disconnectSockets(!!op.close);
      return;
    case "serverSideEmit":
      emitter.of(op.nsp || "/").serverSideEmit(op.event, ...decodeBin(op.args || []));
      return;
    default:
      throw new Error(`unknown op ${JSON.stringify(op.op)}`);
  }
}

async function main() {
  const client = await connectRedis(flags.redis, "emitter");
  const emitter = new Emitter(client, { key: flags.key });

  readJsonLines(
    async (op) => {
      try {
        apply(emitter, op);
        // The emitter drops the publish promise; a PING on the same connection
        // is answered only after that PUBLISH was executed by Redis.
        await client.ping();
        printLine({ ok: true });
      } catch (err) {
        console.error("op %j failed: %s", op, err.stack || err);
        printLine({ ok: false, error: String(err) });
      }
    },
    () => client.quit().then(() => process.exit(0)),
  );
}

main().catch((err) => {
  console.error("emitter failed:", err.stack || err);
  process.exit(1);
});
