// The demo's Node server: Socket.IO 4.8.4 on @socket.io/redis-streams-adapter 0.3.1
// with connection state recovery, in the same cluster as the Python servers: the same page, chat and cluster panel (Celery
// jobs are enqueued by the Python servers). `node node_server.js PORT`; settings
// from REDIS_URL, DEMO_KEY and DEMO_NAME as for app.py.
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { createClient } = require("redis");

const port = Number(process.argv[2] || 5002);
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const key = process.env.DEMO_KEY || "socket.io";
const name = process.env.DEMO_NAME || String(port);
const mode = "Node " + process.version;
const USER = /^[\w.-]{1,32}$/;
const CLIENT_JS = path.join(__dirname, "node_modules/socket.io-client/dist/socket.io.min.js");
const PAGE = fs.readFileSync(path.join(__dirname, "templates/index.html"), "utf8")
  .replace(/{{ server }}/g, name).replace(/{{ mode }}/g, mode)
  .replace(/{{ pid }}/g, String(process.pid));

function isChatRoom(room) {
  return !room.startsWith("user:") && !room.startsWith("server:");
}

function describe(socket) {
  const named = (prefix) => [...socket.rooms].filter((r) => r.startsWith(prefix))
    .map((r) => r.slice(prefix.length)).join(", ");
  return {
    id: socket.id, user: named("user:"), server: named("server:"),
    rooms: [...socket.rooms].filter((r) => r !== socket.id && isChatRoom(r)).sort(),
  };
}

async function main() {
  const pub = createClient({ url: redisUrl });
  await pub.connect();

  const httpServer = http.createServer((req, res) => {
    const url = req.url.split("?")[0];
    if (url === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(PAGE);
    } else if (url === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "application/javascript" });
      fs.createReadStream(CLIENT_JS).pipe(res);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, { streamName: key, channelPrefix: key }),
    connectionStateRecovery: { maxDisconnectionDuration: 120000 },
  });
  const chat = (room, text) => io.to(room).emit("chat", { room, from: "server " + name, text });
  const reply = (ack, value) => { if (typeof ack === "function") ack(value); };

  io.on("connection", (socket) => {
    if (socket.recovered) {  // its rooms are back: its user's among them
      const user = [...socket.rooms].find((r) => r.startsWith("user:"));
      socket.emit("welcome", { server: name, mode, pid: process.pid,
        user: user ? user.slice(5) : null, recovered: true });
    } else {
      let user = String((socket.handshake.auth || {}).user || "");
      if (!USER.test(user)) user = "guest-" + Math.random().toString(16).slice(2, 6);
      socket.join(["user:" + user, "server:" + name]);
      socket.emit("welcome", { server: name, mode, pid: process.pid, user, recovered: false });
    }

    socket.on("join", (room, ack) => {
      socket.join(room);
      chat(room, "someone joined");
      reply(ack, null);
    });
    socket.on("leave", (room, ack) => {
      chat(room, "someone left");
      socket.leave(room);
      reply(ack, null);
    });
    socket.on("chat", (m) => chat(m.room, String(m.text).slice(0, 500)));
    socket.on("start_job", (steps, ack) => reply(ack, null));  // no Celery here
    socket.on("cluster", async (ack) => {
      try {
        // streams mode has no allRooms(): the rooms are those of the sockets
        const [sockets, servers] = await Promise.all([
          io.fetchSockets(), io.of("/").adapter.serverCount()]);
        const rooms = new Set(sockets.flatMap((s) => [...s.rooms].filter(
          (r) => r !== s.id && isChatRoom(r))));
        reply(ack, { servers, sockets: sockets.map(describe), rooms: [...rooms].sort() });
      } catch (err) {
        reply(ack, { error: String(err) });
      }
    });
  });
  httpServer.listen(port, "127.0.0.1", () => {
    console.log("server %s (%s): http://127.0.0.1:%d (Redis %s)", name, mode, port, redisUrl);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
