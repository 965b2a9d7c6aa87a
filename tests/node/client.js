// A socket.io-client 4.8.4 peer: prints what it receives as JSON lines and
// takes `emit` / `ctl` / `disconnect` / `connect` commands as JSON lines on
// stdin; exits when stdin closes.
"use strict";

const { io } = require("socket.io-client");
const { parseFlags, decodeBin, encodeBin, printLine, readJsonLines } = require("./wire");

const flags = parseFlags(process.argv.slice(2), ["url"]);
const nsp = flags.nsp || "/";
const options = {
  transports: ["websocket"],
  reconnection: false,
  query: { rooms: flags.rooms || "" },
};
// --reconnect yes: reconnect 200 ms after a lost connection, every time (the
// client then sends {pid, offset} in its auth: connection state recovery)
if (flags.reconnect === "yes") {
  Object.assign(options, { reconnection: true, reconnectionDelay: 200,
    reconnectionDelayMax: 200, randomizationFactor: 0 });
}
// --auth JSON: the CONNECT packet's auth payload
if (flags.auth !== undefined) options.auth = JSON.parse(flags.auth);
const socket = io(flags.url + (nsp === "/" ? "" : nsp), options);

socket.on("connect", () => printLine({ type: "connect", sid: socket.id,
  recovered: socket.recovered }));
socket.on("connect_error", (err) => printLine({ type: "connect_error", message: err.message }));
socket.on("disconnect", (reason) => printLine({ type: "disconnect", reason }));

socket.onAny((event, ...args) => {
  const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
  printLine({ type: "event", event, args: encodeBin(args), withAck: ack !== null });
  // An event sent with an acknowledgement is answered by echoing its arguments.
  if (ack) ack(...args);
});

function handle(cmd) {
  switch (cmd.op) {
    case "emit":
      socket.emit(cmd.event, ...decodeBin(cmd.args || []));
      return;
    case "ctl":
      socket.emit("ctl", cmd.data, (reply) => {
        printLine({ type: "ack", id: cmd.id, data: encodeBin(reply) });
      });
      return;
    case "disconnect":  // for good: no session kept (socket.io-client keeps its pid)
      socket.disconnect();
      return;
    case "connect":
      socket.connect();
      return;
    default:
      throw new Error(`unknown stdin op ${JSON.stringify(cmd.op)}`);
  }
}

readJsonLines(handle, () => {
  socket.close();
  process.exit(0);
});
