// Shared plumbing of the Node test peers: CLI flags, the {"$bin": base64}
// convention for binary values, and JSON lines on stdin/stdout.
"use strict";

const readline = require("readline");
const { createClient } = require("redis");

/** Parse `--name value` pairs; every flag named in `required` must be given. */
function parseFlags(argv, required) {
  const flags = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
      throw new Error(`bad argument ${argv[i]}: expected --name value pairs`);
    }
    flags[argv[i].slice(2)] = argv[i + 1];
  }
  for (const name of required) {
    if (flags[name] === undefined) throw new Error(`missing --${name}`);
  }
  return flags;
}

function isBin(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof value.$bin === "string"
  );
}

/** Turn every {"$bin": base64} (recursively) into a Buffer. */
function decodeBin(value) {
  if (isBin(value)) return Buffer.from(value.$bin, "base64");
  if (Array.isArray(value)) return value.map(decodeBin);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = decodeBin(v);
    return out;
  }
  return value;
}

/** Turn every Buffer / ArrayBuffer / typed array (recursively) into {"$bin": base64}. */
function encodeBin(value) {
  if (Buffer.isBuffer(value)) return { $bin: value.toString("base64") };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("base64") };
  if (ArrayBuffer.isView(value)) {
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return { $bin: bytes.toString("base64") };
  }
  if (Array.isArray(value)) return value.map(encodeBin);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = encodeBin(v);
    return out;
  }
  return value;
}

/** Write one JSON line to stdout (synchronous for pipes on Linux). */
function printLine(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

/**
 * Feed every stdin line, parsed as JSON, to `handle` one at a time (in order);
 * call `onClose` once stdin has closed and every line has been handled.
 */
function readJsonLines(handle, onClose) {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  let chain = Promise.resolve();
  rl.on("line", (line) => {
    if (!line.trim()) return;
    chain = chain.then(() => handle(JSON.parse(line)));
    chain = chain.catch((err) => {
      console.error("error handling stdin line %s: %s", line, err.stack || err);
    });
  });
  rl.on("close", () => {
    chain.then(onClose);
  });
}

/**
 * A connected node-redis v4 client. A failed first connection rejects (instead
 * of node-redis' endless retries) so a wrong URL fails the peer at once; once
 * connected, the client reconnects as usual. `options` are more createClient
 * options (a `name`, for example).
 */
async function connectRedis(url, role, options = {}) {
  let connected = false;
  const client = createClient({
    ...options,
    url,
    socket: {
      reconnectStrategy: (retries, cause) => (connected ? Math.min(retries * 50, 500) : cause),
    },
  });
  client.on("error", (err) => console.error("redis %s client error:", role, err.message));
  client.on("ready", () => {
    connected = true;
  });
  await client.connect();
  return client;
}

module.exports = { connectRedis, parseFlags, decodeBin, encodeBin, printLine, readJsonLines };
