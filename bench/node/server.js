// Baseline B's server: Socket.IO 4.8.4 + @socket.io/redis-adapter 8.3.0, or with
// --stream-name S (and --max-len N) @socket.io/redis-streams-adapter 0.3.1 on stream S.
// Clients join the rooms of their `rooms` query; a `relay` event
// [room, seq, t, pad] is broadcast to `room` as `b` (seq, t, pad).
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const streams = require("@socket.io/redis-streams-adapter");
const { parseFlags, nowMs, printLine, readJsonLines, connectRedis } = require("./lib");

const flags = parseFlags(process.argv.slice(2));

async function main() {
  const [pub, sub] = await Promise.all([connectRedis(flags.redis), connectRedis(flags.redis)]);
  const httpServer = http.createServer();
  // the streams adapter reads the stream on a connection it duplicates from
  // `pub`: the driver waits until Redis lists that XREAD as blocked
  const adapter = flags["stream-name"]
    ? streams.createAdapter(pub, {
      streamName: flags["stream-name"], channelPrefix: flags.key,
      maxLen: Number(flags["max-len"] || 10000),
    })
    : createAdapter(pub, sub, { key: flags.key });
  const io = new Server(httpServer, {
    adapter,
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
  // the adapter subscribes asynchronously: wait until Redis lists it (the
  // streams adapter has no request channel: its public one)
  const probe = await connectRedis(flags.redis);
  const channel = flags["stream-name"] ? `${flags.key}#/#` : `${flags.key}-request#/#`;
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
