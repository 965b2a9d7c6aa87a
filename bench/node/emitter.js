// Baseline B's emitter: @socket.io/redis-emitter 5.1.0 publishing as fast as
// node-redis lets it (it pipelines every command issued in the same tick).
"use strict";

const { Emitter } = require("@socket.io/redis-emitter");
const { parseFlags, nowMs, printLine, readJsonLines, connectRedis, pad } = require("./lib");

const flags = parseFlags(process.argv.slice(2));

async function main() {
  const client = await connectRedis(flags.redis);
  const emitter = new Emitter(client, { key: flags.key });
  readJsonLines(
    async (op) => {
      if (op.op !== "emit") throw new Error(`unknown op ${op.op}`);
      const text = pad(op.size || 0);
      const target = op.room ? emitter.to(op.room) : emitter;
      const start = nowMs();
      for (let i = 0; i < op.count; i++) target.emit("b", i, nowMs(), text);
      await client.ping(); // answered once every PUBLISH before it was executed
      printLine({ reply: "emit", count: op.count, elapsed: (nowMs() - start) / 1000 });
    },
    () => client.quit().then(() => process.exit(0)),
  );
  printLine("READY");
}

main().catch((err) => {
  console.error(err.stack || err);
  process.exit(1);
});
