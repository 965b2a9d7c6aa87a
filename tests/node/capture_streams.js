// Captures what the pinned @socket.io/redis-streams-adapter 0.3.1 puts on Redis: every
// XADD (read back from MONITOR, argument bytes exact) and every PUBLISH (read by a
// pattern subscriber, which NUMSUB does not count), per step, plus Node's stream
// name hash for a few namespace names.
// Usage: node capture_streams.js --redis URL --key PREFIX > tests/data/streams_vectors.json
// (use a Redis of its own: MONITOR sees every client's commands)
"use strict";

const http = require("http");
const net = require("net");
const { Server } = require("socket.io");
const { io: connectClient } = require("socket.io-client");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { hashCode } = require("@socket.io/redis-streams-adapter/dist/util");
const { decode } = require("@msgpack/msgpack");
const { connectRedis, parseFlags, encodeBin } = require("./wire");

const flags = parseFlags(process.argv.slice(2), ["redis", "key"]);
const key = flags.key;
const stream = `${key}-stream`;
const counted = `${key}-counted`; // streamCount 3, maxLen 500
const captured = [];
let step = null;

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, test) {
  const deadline = Date.now() + 15000;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(20);
  }
}

/** Run `op` as step `name`, then give the spies time to see what it sent. */
async function run(name, op) {
  step = name;
  await op();
  await pause(300);
}

function describe(buf) {
  if (buf[0] === 0x7b) return { encoding: "json", text: buf.toString("utf8") };
  return { encoding: "msgpack", text: JSON.stringify(encodeBin(decode(buf))) };
}

function recordPublish(message, channel) {
  const buf = Buffer.from(message);
  captured.push({ step, command: "PUBLISH", channel: String(channel), hex: buf.toString("hex"),
    ...describe(buf) });
}

// -------------------------------------------------------------- MONITOR

/** The arguments of one MONITOR line, as exact bytes (Redis's sdscatrepr quoting). */
function monitorArgs(line) {
  const args = [];
  let i = line.indexOf("] ") + 2;
  while (i < line.length) {
    if (line[i] !== '"') { i++; continue; }
    const bytes = [];
    i++;
    while (line[i] !== '"') {
      if (line[i] !== "\\") {
        bytes.push(...Buffer.from(line[i], "latin1"));
        i++;
        continue;
      }
      const c = line[i + 1];
      const simple = { n: 10, r: 13, t: 9, a: 7, b: 8, '"': 34, "\\": 92 };
      if (c === "x") {
        bytes.push(parseInt(line.slice(i + 2, i + 4), 16));
        i += 4;
      } else {
        bytes.push(simple[c]);
        i += 2;
      }
    }
    i++;
    args.push(Buffer.from(bytes));
  }
  return args;
}

function monitor(url) {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let buffer = "";
  socket.setEncoding("latin1"); // MONITOR escapes every non-printable byte
  socket.write("MONITOR\r\n");
  socket.on("data", (chunk) => {
    buffer += chunk;
    let at;
    while ((at = buffer.indexOf("\r\n")) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (!line.startsWith("+") || line === "+OK") continue;
      const args = monitorArgs(line.slice(1));
      const name = args[0] && args[0].toString().toUpperCase();
      if (name === "XADD") {
        captured.push({ step, command: "XADD", args: args.map((a) => a.toString("utf8")),
          hex: args.map((a) => a.toString("hex")) });
      } else if (name === "PUBSUB") {
        captured.push({ step, command: "PUBSUB", args: args.map((a) => a.toString("utf8")) });
      }
    }
  });
  return socket;
}

// -------------------------------------------------------------- servers

async function server(name, opts) {
  const client = await connectRedis(flags.redis, name);
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(client, opts) });
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  return { io, client, httpServer, port: httpServer.address().port };
}

async function client(port, nsp, rooms, onEvent) {
  const socket = connectClient(`http://127.0.0.1:${port}${nsp}`,
    { transports: ["websocket"], query: { rooms: rooms.join(",") } });
  socket.onAny(onEvent);
  await new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", reject);
  });
  return socket;
}

function joinFromQuery(io) {
  for (const nsp of ["/", "/admin"]) {
    io.of(nsp).on("connection", (socket) => {
      const rooms = (socket.handshake.query.rooms || "").split(",").filter((r) => r);
      socket.join(rooms);
      socket.data = { rooms };
    });
  }
}

async function main() {
  const spy = await connectRedis(flags.redis, "spy");
  const probe = await connectRedis(flags.redis, "probe");
  const watcher = monitor(flags.redis);
  await spy.pSubscribe(`${key}#*`, recordPublish, true);

  const opts = { streamName: stream, channelPrefix: key };
  const a = await server("A", opts);
  const b = await server("B", opts);
  joinFromQuery(a.io);
  joinFromQuery(b.io);
  b.io.on("t8_ping", (n, ack) => ack({ server: "B", n, bin: Buffer.from([9, 8]) }));
  b.io.on("t6_ping", () => {});
  await until("two streams servers", async () => {
    const reply = await probe.sendCommand(["PUBSUB", "NUMSUB", `${key}#/#`]);
    return Number(reply[1]) >= 2;
  });
  // clients ack every event that expects it with `value`
  const ack = (value) => (...args) => {
    const last = args[args.length - 1];
    if (typeof last === "function") last(value);
  };
  const c1 = await client(a.port, "/", ["room1"], ack({ client: "c1" }));
  const c2 = await client(b.port, "/", ["room1", "room2"], ack(Buffer.from([1, 2, 3])));
  const c3 = await client(b.port, "/", [], () => {});
  const c5 = await client(b.port, "/admin", ["adminroom"], () => {});
  const io = a.io;

  await run("T1", () => io.emit("t1", "from A", 2));
  await run("T2", () => io.to("room2").emit("t2"));
  await run("T3", () => io.except("room1").emit("t3"));
  await run("T4", () => io.to("room1").emit("t4", Buffer.from([0xde, 0xad, 0xbe, 0xef]),
    { nested: [Buffer.alloc(300, 7)], s: "x".repeat(40) }, "txt", -1, 1.5, null));
  await run("T5", () => io.to(["room1", "room2"]).except("x1").volatile.compress(false)
    .emit("t5", 1));
  await run("T6", () => io.serverSideEmit("t6_ping", "hi", { n: 1 }));
  await run("T7", () => io.serverSideEmit("t6_ping", Buffer.from([1, 2, 3])));
  await run("T8", () => io.serverSideEmitWithAck("t8_ping", 8));
  await run("T9", () => io.in("room1").fetchSockets());
  await run("T10", () => io.to("room1").timeout(2000).emitWithAck("t10", "q"));
  await run("T11", () => io.except("room2").socketsJoin(["room4", "room5"]));
  await run("T12", () => io.in("room4").socketsLeave("room4"));
  await run("T13", () => io.of("/admin").to("adminroom").emit("t13", { a: 1 }));
  await run("T14", () => a.io.of("/").adapter.serverCount());
  await run("T15", () => io.in("room2").disconnectSockets(true));
  await run("T16", () => io.of("/admin").disconnectSockets());

  // stream names with streamCount 3 (and maxLen 500): /users -> -0, /notifications -> --2
  const c = await server("C", { streamName: counted, channelPrefix: key, streamCount: 3,
    maxLen: 500 });
  const nsps = ["/", "/users", "/notifications", "/admin"];
  for (const nsp of nsps) c.io.of(nsp);
  await run("T17", async () => {
    for (const nsp of nsps) c.io.of(nsp).emit("t17", nsp);
  });

  const names = ["", "/", "/admin", "/users", "/notifications", "/chat", "/é", "/日本",
    "/\u{1F600}", "/a-very-long-namespace-name-to-overflow-the-hash-many-times"];
  const out = {
    source: "tests/node/capture_streams.js (socket.io 4.8.4, @socket.io/redis-streams-adapter "
      + "0.3.1, @msgpack/msgpack 2.8.0, redis 4.7.1); key prefix " + key,
    conventions: "XADD: args and hex = the exact argument bytes (from MONITOR); PUBLISH: hex = "
      + "payload bytes, text = the decoded value as JSON ({\"$bin\": base64} for binary)",
    streams: { main: stream, counted, counted_count: 3, counted_max_len: 500 },
    hashes: names.map((name) => ({ name, hash: hashCode(name) })),
    captured,
  };
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
  for (const s of [c1, c2, c3, c5]) s.disconnect();
  for (const s of [a, b, c]) {
    s.io.close();
  }
  watcher.destroy();
  await Promise.all([spy, probe, a.client, b.client, c.client].map((x) => x.quit().catch(() => {})));
  process.exit(0);
}

main().catch((err) => {
  console.error(err.stack || err);
  process.exit(1);
});
