import { pino, type Logger } from 'pino'
import type { Config } from './config.js'

/** JSON lines by default; LOG_FORMAT=pretty gives readable output through pino-pretty. */
export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>): Logger {
  return pino({
    level: config.logLevel,
    ...(config.logFormat === 'pretty'
      ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:standard', ignore: 'pid,hostname' } } }
      : {}),
  })
}
