// Baseline B's server: Socket.IO 4.8.4 + @socket.io/redis-adapter 8.3.0.
// Clients join the rooms of their `rooms` query; a `relay` event
// [room, seq, t, pad] is broadcast to `room` as `b` (seq, t, pad).
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { parseFlags, nowMs, printLine, readJsonLines, connectRedis } = require("./lib");

const flags = parseFlags(process.argv.slice(2));

async function main() {
  const [pub, sub] = await Promise.all([connectRedis(flags.redis), connectRedis(flags.redis)]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub, { key: flags.key }),
    maxHttpBufferSize: 1e8,
  });
  io.on("connection", (socket) => {
    const rooms = (socket.handshake.query.rooms || "").split(",").filter((r) => r);
    socket.join(rooms);
    socket.on("relay", (room, seq, t, text) => io.to(room).emit("b", seq, t, text));
  });
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  readJsonLines(
    async (op) => {
      if (op.op === "fetch_sockets") {
        const times = [];
        let found = 0;
        for (let i = 0; i < op.count; i++) {
          const start = nowMs();
          found = (await io.fetchSockets()).length;
          times.push(nowMs() - start);
        }
        printLine({ reply: op.op, times, found });
      } else if (op.op === "server_side_call") {
        const times = [];
        let replies = 0;
        for (let i = 0; i < op.count; i++) {
          const start = nowMs();
          replies = (await io.serverSideEmitWithAck("ping", i)).length;
          times.push(nowMs() - start);
        }
        printLine({ reply: op.op, times, replies });
      } else {
        throw new Error(`unknown op ${op.op}`);
      }
    },
    () => process.exit(0),
  );
  io.on("ping", (i, ack) => ack(i));
  process.on("SIGTERM", () => process.exit(0));
  // the adapter subscribes asynchronously: wait until Redis lists it
  const probe = await connectRedis(flags.redis);
  const channel = `${flags.key}-request#/#`;
  for (;;) {
    const counts = await probe.pubSubNumSub(channel);
    if (counts[channel] >= 1) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  await probe.quit();
  printLine(`READY ${httpServer.address().port}`);
}

main().catch((err) => {
  console.error(err.stack || err);
  process.exit(1);
});
