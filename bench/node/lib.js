// Plumbing of the bench's Node peers: the tests' JSON-lines helpers
// (tests/node/wire.js) plus a wall clock in ms with sub-ms resolution.
"use strict";

const { performance } = require("perf_hooks");
const { parseFlags, printLine, readJsonLines, connectRedis } = require("../../tests/node/wire");

/** Wall-clock milliseconds, comparable with Python's time.time() * 1000. */
function nowMs() {
  return performance.timeOrigin + performance.now();
}

function pad(size) {
  return "x".repeat(Math.max(0, size));
}

module.exports = {
  parseFlags: (argv) => parseFlags(argv, []),
  nowMs,
  printLine,
  readJsonLines,
  connectRedis: (url) => connectRedis(url, "bench"),
  pad,
};
