// Serves the benchmark's p2p-media-loader player on 127.0.0.1: its page and
// script, the demo player's playback-metrics module and style, and the built bundles, read
// from node_modules at request time (p2p-media-loader is a development
// dependency of the benchmark only and never reaches public/).
//
//   const pages = await startComparisonPages()
//   pages.url   // http://127.0.0.1:PORT, the page is pages.url + '/?src=...'
//   await pages.stop()
import fs from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const REPO = path.resolve(HERE, '../..')
const MODULES = path.join(REPO, 'node_modules')

const FILES = {
  '/': [path.join(HERE, 'index.html'), 'text/html'],
  '/player.js': [path.join(HERE, 'player.js'), 'text/javascript'],
  '/playback-metrics.js': [path.join(REPO, 'public/_lt/playback-metrics.js'), 'text/javascript'],
  '/demo.css': [path.join(REPO, 'public/_lt/demo.css'), 'text/css'],
  '/vendor/hls.min.js': [path.join(MODULES, 'hls.js/dist/hls.min.js'), 'text/javascript'],
  '/vendor/p2p-media-loader-core.es.js': [path.join(MODULES, 'p2p-media-loader-core/dist/p2p-media-loader-core.es.js'), 'text/javascript'],
  '/vendor/p2p-media-loader-hlsjs.es.js': [path.join(MODULES, 'p2p-media-loader-hlsjs/dist/p2p-media-loader-hlsjs.es.js'), 'text/javascript']
}

export async function startComparisonPages ({ host = '127.0.0.1' } = {}) {
  const server = http.createServer(async (req, res) => {
    const file = FILES[new URL(req.url, 'http://x').pathname]
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end('not found\n')
      return
    }
    try {
      const body = await fs.readFile(file[0])
      res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body)
    } catch (error) {
      res.writeHead(500).end(`cannot read ${path.relative(REPO, file[0])}: ${error.message}\n`)
    }
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, resolve)
  })
  const { port } = server.address()
  return {
    url: `http://${host}:${port}`,
    stop: () => new Promise(resolve => {
      server.closeAllConnections?.()
      server.close(() => resolve())
    })
  }
}
