// The legacy Node hyper server, as bench/hyper.sh measures it: @hyper63/core 1.x wired with its
// pouchdb (data, LevelDB files on disk), minisearch (search) and memory (cache) adapters behind
// its express app (@hyper63/app-express). Versions are pinned in bench/hyper/package.json;
// bench/hyper.sh installs them (npm ci) into $ARCBASE_BENCH_CACHE/hyper-legacy and runs this
// file from there.
//
//   node legacy-server.mjs PORT DATA_DIR      (listens on 127.0.0.1:PORT)
//
// app-express calls `app.listen(process.env.PORT || 6363)` itself, on every interface, unless
// NODE_ENV is "test"; we set "test" so that it only builds the app, and listen on loopback here.
import core from '@hyper63/core'
import express from '@hyper63/app-express'
import pouchdb from '@hyper63/adapter-pouchdb'
import minisearch from '@hyper63/adapter-minisearch'
import memory from '@hyper63/adapter-memory'

const port = Number(process.argv[2] || 6363)
const dir = process.argv[3]
if (!dir) {
  console.error('usage: node legacy-server.mjs PORT DATA_DIR')
  process.exit(2)
}
process.env.NODE_ENV = 'test'

const app = core({
  app: express,
  adapters: [
    { port: 'data', plugins: [pouchdb({ dir })] },
    { port: 'search', plugins: [minisearch()] },
    { port: 'cache', plugins: [memory()] }
  ]
})

const server = app.listen(port, '127.0.0.1', () => {
  console.log(`legacy hyper (@hyper63/core) listening on 127.0.0.1:${port}, data in ${dir}`)
})
const stop = () => {
  server.close(() => process.exit(0))
  server.closeAllConnections()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
