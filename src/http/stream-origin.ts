import { ServiceError } from '../errors.js'

/**
 * Cross-site WebSocket hijacking: a browser lets any page open a WebSocket to any host it can
 * reach and applies no CORS to it. A page on another site could then read, acknowledge (drop)
 * and send as any client of a service its visitor reaches (one on localhost or an intranet).
 * So a stream opens only for a request without an Origin (not a browser: ws, OpenMLS apps,
 * curl), from the service's own origin (the Origin's host is the Host asked for), or from an
 * origin CORS_ORIGINS lists (any, with `*`): the pages that may call the REST API.
 */
export function assertStreamOrigin(origin: string | undefined, host: string | undefined, corsOrigins: readonly string[]): void {
  if (origin === undefined || corsOrigins.includes('*') || corsOrigins.includes(origin) || isSameOrigin(origin, host)) return
  throw new ServiceError('forbidden_origin', `Pages of ${JSON.stringify(origin)} may not open streams: list the origin in CORS_ORIGINS`)
}

function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || !URL.canParse(origin)) return false
  // "null" (sandboxed frames, file: pages) does not parse; URL.host drops a default port, as Host
  // does. The scheme is not compared: behind a TLS proxy the page is https, the request plain http.
  const url = new URL(origin)
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === host.toLowerCase()
}
