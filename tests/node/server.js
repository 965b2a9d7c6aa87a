// A real Socket.IO 4.8.4 server on @socket.io/redis-adapter 8.3.0 (node-redis v4),
// or (`--mode streams`, standalone Redis) on @socket.io/redis-streams-adapter 0.3.1,
// driven by its clients' `ctl` events; prints `READY <port>` once subscribed (and,
// in streams mode, once every stream reader has sent its first XREAD) and exits on
// SIGTERM or when stdin closes.
"use strict";

const http = require("http");
const crypto = require("crypto");
const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { createAdapter: createStreamsAdapter } = require("@socket.io/redis-streams-adapter");
const { createCluster } = require("redis");
const { connectRedis, parseFlags, decodeBin, encodeBin } = require("./wire");

const flags = parseFlags(process.argv.slice(2), ["redis", "key"]);
// --namespaces "/,/admin" (the default): the namespaces served, each with the ctl handlers
const NAMESPACES = (flags.namespaces || "/,/admin").split(",").filter((n) => n !== "");
// Per namespace the adapter SUBSCRIBEs request, response and its own response
// channel, and PSUBSCRIBEs the broadcast pattern.
const SUBS_PER_NSP = 3;
const PSUBS_PER_NSP = 1;
const serverSideEmits = new Map(NAMESPACES.map((n) => [n, []]));

function roomsOf(handshake) {
  const raw = handshake.query.rooms || "";
  return raw.split(",").filter((r) => r !== "");
}

function target(nsp, op) {
  let operator = nsp.to(op.to || op.in || []);
  if (op.except && op.except.length) operator = operator.except(op.except);
  return operator;
}

function localSocket(nsp, sid) {
  return nsp.sockets.get(sid) || null;
}

async function fetchSockets(nsp, op) {
  const sockets = await target(nsp, op).fetchSockets();
  return sockets.map((s) => ({
    id: s.id,
    rooms: [...s.rooms],
    data: s.data,
    handshake: s.handshake,
  }));
}

/** Carry out one control operation; returns the extra fields of the ack. */
async function runOp(io, op) {
  const nsp = io.of(op.nsp || "/");
  switch (op.op) {
    case "emit":
      target(nsp, op).emit(op.event, ...decodeBin(op.args || []));
      return {};
    case "socketsJoin":
      target(nsp, op).socketsJoin(op.rooms);
      return {};
    case "socketsLeave":
      target(nsp, op).socketsLeave(op.rooms);
      return {};
    case "disconnectSockets":
      target(nsp, op).disconnectSockets(!!op.close);
      return {};
    case "rooms": {
      const socket = localSocket(nsp, op.sid);
      return { rooms: socket ? [...socket.rooms] : null };
    }
    case "serverSideEmit":
      nsp.serverSideEmit(op.event, ...decodeBin(op.args || []));
      return {};
    case "serverSideEmitWithAck": {
      // SERVER_SIDE_EMIT with a requestId; on timeout, the partial answers
      try {
        // the adapter's requestsTimeout (--requests-timeout) bounds the wait
        const responses = await nsp.serverSideEmitWithAck(op.event, ...decodeBin(op.args || []));
        return { responses: encodeBin(responses) };
      } catch (err) {
        return { timedOut: true, error: String(err), responses: encodeBin(err.responses || []) };
      }
    }
    case "remoteSocket": {
      // the RemoteSocket API on one fetched socket, wherever it lives
      const [socket] = await nsp.in(op.sid).fetchSockets();
      if (!socket) return { found: false };
      if (op.action === "emit") socket.emit(op.event, ...decodeBin(op.args || []));
      else if (op.action === "join") socket.join(op.room);
      else if (op.action === "leave") socket.leave(op.room);
      else if (op.action === "disconnect") socket.disconnect(!!op.close);
      else throw new Error(`unknown remoteSocket action ${op.action}`);
      return { found: true };
    }
    case "setData": {
      // replace a local socket's data (what connection state recovery keeps)
      const socket = localSocket(nsp, op.sid);
      if (socket) socket.data = decodeBin(op.data);
      return { found: socket !== null };
    }
    case "serverSideEmits":
      return { events: encodeBin(serverSideEmits.get(nsp.name) || []) };
    case "fetchSockets":
      try {
        return { sockets: await fetchSockets(nsp, op) };
      } catch (err) {
        return { timedOut: true, error: String(err) };
      }
    case "allRooms":
      return { rooms: [...(await nsp.adapter.allRooms())] };
    case "serverCount":
      return { count: await nsp.adapter.serverCount() };
    case "emitWithAck": {
      // BROADCAST (7) across the cluster; on timeout, the partial answers
      try {
        const responses = await target(nsp, op)
          .timeout(op.timeout || 2000)
          .emitWithAck(op.event, ...decodeBin(op.args || []));
        return { responses: encodeBin(responses) };
      } catch (err) {
        return { timedOut: true, responses: encodeBin(err.responses || []) };
      }
    }
    default:
      throw new Error(`unknown ctl op ${JSON.stringify(op.op)}`);
  }
}

/** Record every server-side event that reaches this namespace from the cluster. */
function recordServerSideEmits(nsp) {
  const original = nsp._onServerSideEmit.bind(nsp);
  nsp._onServerSideEmit = (args) => {
    const plain = args.filter((a) => typeof a !== "function");
    serverSideEmits.get(nsp.name).push({ event: plain[0], args: plain.slice(1) });
    original(args);
  };
}

/** Answer server-side `ask` events from the cluster with what they carried. */
function answerServerSideAsks(nsp) {
  nsp.on("ask", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack({ server: "node", args: encodeBin(args) });
  });
}

function onConnection(io, pub, socket) {
  // a recovered socket (connection state recovery) has its rooms and data back
  if (!socket.recovered) {
    socket.join(roomsOf(socket.handshake));
    socket.data = { server: "node" };
  }
  socket.on("ctl", async (op, ack) => {
    let reply;
    try {
      const extra = await runOp(io, op);
      // The adapter publishes without awaiting; a PING on the same connection
      // answers only after every earlier PUBLISH reached Redis.
      // (a cluster client: a PING on every master's connection)
      if (typeof pub.ping === "function") await pub.ping();
      else await Promise.all(pub.masters.map(async (m) => (await pub.nodeClient(m)).ping()));
      reply = { ok: true, ...extra };
    } catch (err) {
      console.error("ctl %j failed: %s", op, err.stack || err);
      reply = { ok: false, error: String(err) };
    }
    if (typeof ack === "function") ack(reply);
  });
}

/** Poll Redis until it lists the sub client with every adapter subscription. */
async function waitSubscribed(probe, subId, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  const want = { sub: SUBS_PER_NSP * NAMESPACES.length, psub: PSUBS_PER_NSP * NAMESPACES.length };
  for (;;) {
    const line = await probe.sendCommand(["CLIENT", "LIST", "ID", String(subId)]);
    const sub = Number((/ sub=(\d+)/.exec(line) || [])[1]);
    const psub = Number((/ psub=(\d+)/.exec(line) || [])[1]);
    if (sub >= want.sub && psub >= want.psub) return;
    if (Date.now() > deadline) {
      throw new Error(`adapter subscriptions not established: ${line.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

function listen(httpServer, port) {
  return new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(port, "127.0.0.1", () => resolve(httpServer.address().port));
  });
}

/** A node-redis v4 cluster client (`--cluster yes`), like connectRedis. */
async function connectCluster(url, role) {
  const client = createCluster({ rootNodes: [{ url }] });
  client.on("error", (err) => console.error("redis %s cluster error:", role, err.message));
  await client.connect();
  return client;
}

/** Sharded mode: poll until every namespace's response channel has its subscriber. */
async function waitShardSubscribed(io, pub, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    let done = true;
    for (const name of NAMESPACES) {
      const channel = `${flags.key}#${name}#${io.of(name).adapter.uid}#`;
      const args = ["PUBSUB", "SHARDNUMSUB", channel];
      const reply = flags.cluster === "yes"
        ? await pub.sendCommand(channel, true, args)
        : await pub.sendCommand(args);
      if (Number(reply[1]) < 1) done = false;
    }
    if (done) return;
    if (Date.now() > deadline) throw new Error("sharded subscriptions not established");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The options of createAdapter of @socket.io/redis-streams-adapter, from the flags. */
function streamsOptions() {
  const opts = {
    channelPrefix: flags.key,
    streamName: flags["stream-name"] || "socket.io",
    useShardedPubSub: flags["sharded-pubsub"] === "yes",
  };
  for (const [flag, name] of [["stream-count", "streamCount"], ["max-len", "maxLen"],
    ["read-count", "readCount"]]) {
    if (flags[flag] !== undefined) opts[name] = Number(flags[flag]);
  }
  return opts;
}

/**
 * Streams mode: poll until every namespace's private channel has its
 * subscriber and each of the adapter's stream readers (the clients named
 * `readerName`, duplicates of `pub`) is in XREAD. The readers start from `$`:
 * an entry added before a reader's first XREAD would never reach it.
 */
async function waitStreamsReady(io, probe, readerName, deadlineMs) {
  const opts = streamsOptions();
  const readers = opts.streamCount || 1;
  const command = opts.useShardedPubSub ? "SHARDNUMSUB" : "NUMSUB";
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    let done = true;
    for (const name of NAMESPACES) {
      const channel = `${flags.key}#${name}#${io.of(name).adapter.uid}#`;
      const reply = await probe.sendCommand(["PUBSUB", command, channel]);
      if (Number(reply[1]) < 1) done = false;
    }
    const list = await probe.sendCommand(["CLIENT", "LIST", "TYPE", "normal"]);
    const reading = list.split("\n").filter(
      (line) => line.includes(` name=${readerName} `) && / cmd=xread /.test(line));
    if (reading.length < readers) done = false;
    if (done) return;
    if (Date.now() > deadline) {
      throw new Error(`streams adapter not ready: ${reading.length} of ${readers} readers`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The adapter of --mode (classic, sharded or streams) on the clients it needs. */
async function makeAdapter(connect) {
  if (flags.mode === "streams") {
    // the adapter duplicates `pub` (name included) for its subscriber and readers
    const readerName = `sio-node-streams-${crypto.randomBytes(6).toString("hex")}`;
    const [pub, probe] = await Promise.all([
      connectRedis(flags.redis, "pub", { name: readerName }),
      connectRedis(flags.redis, "probe"),
    ]);
    const adapter = createStreamsAdapter(pub, streamsOptions());
    return { pub, sub: null, probe, adapter,
      ready: (io) => waitStreamsReady(io, probe, readerName, 15000) };
  }
  const sharded = flags.mode === "sharded";
  const [pub, sub, probe] = await Promise.all(
    ["pub", "sub", "probe"].map((role) => connect(flags.redis, role)),
  );
  const subId = sharded ? null : await sub.clientId();
  // --mode sharded: createShardedAdapter with --subscription-mode (classic otherwise)
  const adapter = sharded
    ? createShardedAdapter(pub, sub, {
      channelPrefix: flags.key,
      subscriptionMode: flags["subscription-mode"] || "dynamic",
    })
    : createAdapter(pub, sub, {
      key: flags.key,
      requestsTimeout: Number(flags["requests-timeout"] || 5000),
    });
  const ready = sharded
    ? (io) => waitShardSubscribed(io, pub, 15000)
    : () => waitSubscribed(probe, subId, 15000);
  return { pub, sub, probe, adapter, ready };
}

async function main() {
  const connect = flags.cluster === "yes" ? connectCluster : connectRedis;
  const { pub, sub, probe, adapter, ready } = await makeAdapter(connect);

  const httpServer = http.createServer();
  // connectionStateRecovery stays off (no entry id is appended to broadcasts)
  // unless --recovery <maxDisconnectionDuration in ms> turns it on (streams mode)
  const options = { adapter };
  if (flags.recovery !== undefined) {
    options.connectionStateRecovery = {
      maxDisconnectionDuration: Number(flags.recovery),
      skipMiddlewares: true,
    };
  }
  const io = new Server(httpServer, options);
  for (const name of NAMESPACES) {
    const nsp = io.of(name);
    recordServerSideEmits(nsp);
    answerServerSideAsks(nsp);
    nsp.on("connection", (socket) => onConnection(io, pub, socket));
  }
  const port = await listen(httpServer, Number(flags.port || 0));
  await ready(io);
  await probe.quit();

  process.on("SIGTERM", () => shutdown(io, pub, sub));
  // Stdin closing (the test runner went away) stops the server as well.
  process.stdin.on("end", () => shutdown(io, pub, sub));
  process.stdin.resume();
  process.stdout.write(`READY ${port}\n`);
}

let stopping = false;
function shutdown(io, pub, sub) {
  if (stopping) return;
  stopping = true;
  io.close(() => {
    Promise.all([pub, sub].filter((c) => c !== null).map((c) => c.quit())).then(
      () => process.exit(0),
      (err) => {
        console.error("redis quit failed:", err);
        process.exit(1);
      },
    );
  });
}

main().catch((err) => {
  console.error("server failed to start:", err.stack || err);
  process.exit(1);
});
