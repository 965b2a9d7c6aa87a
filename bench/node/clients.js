// Load clients: --n socket.io-client 4.8.4 sockets to --url (websocket only),
// client i joining --rooms plus rooms r<offset + i*range + j>, j < --range.
// Each counts the `b` events (seq, t, pad) it gets and the latency now - t.
// stdin ops: stats, reset, relay (a separate sender socket emits `relay`).
"use strict";

const { io } = require("socket.io-client");
const { parseFlags, nowMs, printLine, readJsonLines, pad } = require("./lib");

const flags = parseFlags(process.argv.slice(2));
const n = Number(flags.n || 1);
const range = Number(flags.range || 0);
const offset = Number(flags.offset || 0);
const common = (flags.rooms || "").split(",").filter((r) => r);
const MAX_LATENCIES = 400000;

let counts = new Array(n).fill(0);
let latencies = [];
let first = null;
let last = null;

function roomsOf(i) {
  const rooms = common.slice();
  for (let j = 0; j < range; j++) rooms.push(`r${offset + i * range + j}`);
  return rooms.join(",");
}

function connect(rooms) {
  return io(flags.url, {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    query: { rooms },
  });
}

const sockets = [];
for (let i = 0; i < n; i++) {
  const socket = connect(roomsOf(i));
  socket.on("b", (seq, t) => {
    const now = nowMs();
    counts[i]++;
    if (first === null) first = now;
    last = now;
    if (latencies.length < MAX_LATENCIES) latencies.push(now - t);
  });
  socket.on("disconnect", (reason) => console.error("client %d disconnected: %s", i, reason));
  sockets.push(socket);
}
const sender = flags.sender ? connect("") : null;

async function relay(op) {
  const text = pad(op.size || 0);
  const start = nowMs();
  for (let i = 0; i < op.count; i++) {
    if (op.rate) {
      const due = start + (i * 1000) / op.rate;
      const wait = due - nowMs();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    } else if (i % 200 === 0) {
      await new Promise((r) => setImmediate(r)); // let the socket write
    }
    sender.emit("relay", op.room, i, nowMs(), text);
  }
  printLine({ reply: "relay", elapsed: (nowMs() - start) / 1000 });
}

readJsonLines(
  async (op) => {
    if (op.op === "stats") {
      const total = counts.reduce((a, b) => a + b, 0);
      printLine({
        reply: "stats", received: total, min: Math.min(...counts), max: Math.max(...counts),
        first, last, latencies: op.latencies ? latencies : [],
      });
    } else if (op.op === "reset") {
      counts = new Array(n).fill(0);
      latencies = [];
      first = last = null;
      printLine({ reply: "reset" });
    } else if (op.op === "relay") {
      await relay(op);
    } else {
      throw new Error(`unknown op ${op.op}`);
    }
  },
  () => {
    for (const s of sockets) s.close();
    if (sender) sender.close();
    process.exit(0);
  },
);

let connected = 0;
const everyone = sender ? sockets.concat([sender]) : sockets;
for (const s of everyone) {
  s.once("connect", () => {
    connected++;
    if (connected === everyone.length) printLine(`READY ${connected}`);
  });
  s.on("connect_error", (err) => console.error("connect_error: %s", err.message));
}
