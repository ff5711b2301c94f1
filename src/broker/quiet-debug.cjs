// The `debug` package, as mqtt and mqtt-packet (its only users here) call it: with DEBUG unset, a function that
// does nothing. The real one asks a getter on every call, and mqtt-packet calls it a dozen times for every packet
// it parses or writes (~5 % of the broker's CPU under load). With DEBUG set, the real package, so its diagnostics
// stay one variable away. tsconfig.json maps the package here, for Bun's runtime and bundler alike.
"use strict";

if (process.env.DEBUG) {
  module.exports = require("../../node_modules/debug/src/index.js");
} else {
  const quiet = () => {
    const log = () => {};
    log.enabled = false;
    log.namespace = "";
    log.extend = () => log;
    log.log = () => {};
    return log;
  };
  quiet.enable = () => {};
  quiet.disable = () => "";
  quiet.enabled = () => false;
  module.exports = quiet;
}
