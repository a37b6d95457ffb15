// Preloaded into the service by the memory scenario ONLY (with --expose-gc; see bench/README.md):
// SIGUSR2 runs one full garbage collection, so "RSS after delete" can be read both as V8 left
// it on an idle server and once the garbage is actually collected. Never used in production.
process.on('SIGUSR2', () => globalThis.gc?.())
