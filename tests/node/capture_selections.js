// Captures what the pinned Node peers publish for messages that select sockets with
// non-empty rooms, except lists and flags (classic and sharded adapter, classic emitter).
// Usage: node capture_selections.js --redis URL --key PREFIX > tests/data/selection_vectors.json
"use strict";

const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");
const notepack = require("notepack.io");
const { connectRedis, parseFlags } = require("./wire");

const flags = parseFlags(process.argv.slice(2), ["redis", "key"]);
const captured = [];
let step = null;

function record(mode, message, channel) {
  const buf = Buffer.from(message);
  const json = buf[0] === 0x7b;
  captured.push({
    step,
    mode,
    channel: String(channel),
    encoding: json ? "json" : "msgpack",
    text: json ? buf.toString("utf8") : JSON.stringify(notepack.decode(buf)),
    hex: buf.toString("hex"),
  });
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, test) {
  const deadline = Date.now() + 15000;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(20);
  }
}

/** Run `op` as step `name`, then give the spy time to see what it published. */
async function run(name, op) {
  step = name;
  await op();
  await pause(300);
}

async function servers(key, make) {
  const clients = [];
  const ios = [];
  for (let i = 0; i < 2; i++) {
    const pub = await connectRedis(flags.redis, "pub");
    const sub = await connectRedis(flags.redis, "sub");
    clients.push(pub, sub);
    ios.push(new Server({ adapter: make(pub, sub) }));
  }
  return { ios, clients };
}

async function classic(spy, probe) {
  const key = `${flags.key}-classic`;
  await spy.pSubscribe(`${key}*`, (message, channel) => record("classic", message, channel), true);
  const { ios, clients } = await servers(key, (pub, sub) => createAdapter(pub, sub, { key }));
  await until("two classic servers", async () => {
    const reply = await probe.sendCommand(["PUBSUB", "NUMSUB", `${key}-request#/#`]);
    return Number(reply[1]) >= 2;
  });
  const io = ios[0];
  const emitter = new Emitter(probe, { key });
  await run("C1", () => io.in("r1").except(["x1", "x2"]).socketsJoin(["j1", "j2"]));
  await run("C2", () => io.in(["r1", "r2"]).except("x1").socketsLeave("l1"));
  await run("C3", () => io.in("r1").except("x1").disconnectSockets(true));
  await run("C4", () => io.except("x1").disconnectSockets());
  await run("C5", () => io.in("r1").except(["x1", "x2"]).fetchSockets());
  await run("C6", () => io.to(["r1", "r2"]).except("x1").volatile.compress(false).emit("c6", 1));
  await run("C7", () => io.to("r1").except("x1").timeout(1000).emit("c7", () => {}));
  await run("C8", () => emitter.in("r1").except(["x1", "x2"]).socketsJoin("j1"));
  await run("C9", () => emitter.in("r1").except("x1").socketsLeave(["l1", "l2"]));
  await run("C10", () => emitter.in(["r1", "r2"]).except("x1").disconnectSockets(true));
  await run("C11", () => emitter.of("/admin").to("r1").except("x1").emit("c11", "a"));
  await spy.pUnsubscribe();
  return clients;
}

async function sharded(spy, probe) {
  const key = `${flags.key}-sharded`;
  const { ios, clients } = await servers(key, (pub, sub) =>
    createShardedAdapter(pub, sub, { channelPrefix: key, subscriptionMode: "static" }));
  const main = `${key}#/#`;
  await until("two sharded servers", async () => {
    const reply = await probe.sendCommand(["PUBSUB", "SHARDNUMSUB", main]);
    return Number(reply[1]) >= 2;
  });
  const io = ios[0];
  const answers = `${main}${io.of("/").adapter.uid}#`;
  for (const channel of [main, answers]) {
    await spy.sSubscribe(channel, (message, ch) => record("sharded", message, ch || channel), true);
  }
  await run("S1", () => io.in("r1").except(["x1", "x2"]).socketsJoin(["j1", "j2"]));
  await run("S2", () => io.in(["r1", "r2"]).except("x1").socketsLeave("l1"));
  await run("S3", () => io.in("r1").except("x1").disconnectSockets(true));
  await run("S4", () => io.except("x1").disconnectSockets());
  // the spy counts as a third server here: the request times out, unanswered by it
  await run("S5", () => {
    io.in("r1").except(["x1", "x2"]).fetchSockets().catch(() => {});
  });
  await run("S6", () => io.to(["r1", "r2"]).except("x1").volatile.compress(false).emit("s6", 1));
  await run("S7", () => io.to("r1").except("x1").timeout(1000).emit("s7", () => {}));
  return clients;
}

async function main() {
  const spy = await connectRedis(flags.redis, "spy");
  const probe = await connectRedis(flags.redis, "probe");
  const clients = [...(await classic(spy, probe)), ...(await sharded(spy, probe))];
  await pause(200);
  const out = {
    source: "tests/node/capture_selections.js (socket.io 4.8.4, @socket.io/redis-adapter 8.3.0, "
      + "@socket.io/redis-emitter 5.1.0); key prefix " + flags.key
      + "; sharded: createShardedAdapter subscriptionMode static",
    conventions: "hex = exact payload bytes; text = JSON text (json) or the decoded value as JSON (msgpack)",
    captured,
  };
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
  await Promise.all([spy, probe, ...clients].map((c) => c.quit().catch(() => {})));
  process.exit(0);
}

main().catch((err) => {
  console.error(err.stack || err);
  process.exit(1);
});
