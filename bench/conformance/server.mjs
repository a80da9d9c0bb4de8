// The cache-tests origin, bound to loopback only.
//
// The package's own server (server/server.mjs) listens on every interface and also serves
// its web UI from the working directory; the harness needs neither, so this wrapper reuses
// the package's request handlers and listens on 127.0.0.1 only.
//
// Usage: node server.mjs PORT      (prints "Listening on http://127.0.0.1:PORT/" when ready)

import http from 'http'
import process from 'process'

import handleConfig from 'http-cache-tests/server/handle-config.mjs'
import handleState from 'http-cache-tests/server/handle-state.mjs'
import handleTest from 'http-cache-tests/server/handle-test.mjs'
import { sendResponse } from 'http-cache-tests/server/utils.mjs'

const HOST = '127.0.0.1'
const port = Number.parseInt(process.argv[2], 10)
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`usage: node server.mjs PORT (got ${JSON.stringify(process.argv[2])})`)
  process.exit(2)
}

const handlers = { config: handleConfig, test: handleTest, state: handleState }

const server = http.createServer((request, response) => {
  const url = new URL(request.url, `http://${HOST}:${port}/`)
  const [dispatch, ...pathSegs] = url.pathname.split('/').slice(1)
  const handler = handlers[dispatch]
  if (handler === undefined) {
    sendResponse(response, 404, `${url.pathname} Not Found`)
    return
  }
  handler(pathSegs, request, response)
})

server.on('listening', () => console.log(`Listening on http://${HOST}:${port}/`))
server.listen(port, HOST)
