import { ConfigError, helpText, loadConfig } from './config.js'
import { createLogger } from './logger.js'
import { ListenError, startService } from './runtime.js'
import { StoreUnavailableError } from './storage/errors.js'
import { TlsError } from './tls.js'

/** Process entry: read config, start both listeners, stop cleanly on SIGINT/SIGTERM. */
async function main(): Promise<number | undefined> {
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`error: ${err.message}\nRun with --help to see every setting.\n`)
      return 2
    }
    throw err
  }
  if ('help' in config) {
    process.stdout.write(helpText())
    return 0
  }

  const logger = createLogger(config)
  let running: Awaited<ReturnType<typeof startService>> | undefined
  // A renewed certificate is taken without a restart (also while starting: it is read then anyway);
  // without TLS, SIGHUP keeps its default (it ends the process).
  let reloadWhenStarted = false
  if (config.tlsCertFile) {
    process.on('SIGHUP', () => {
      logger.info({ signal: 'SIGHUP' }, 'Reloading the TLS certificate')
      if (running) void running.reloadTls()
      else reloadWhenStarted = true
    })
  }
  try {
    running = await startService(config, logger)
  } catch (err) {
    if (err instanceof ListenError || err instanceof TlsError) {
      logger.flush()
      process.stderr.write(`error: ${err.message}\n`)
      return 1
    }
    if (err instanceof StoreUnavailableError) {
      logger.flush()
      process.stderr.write(`error: cannot reach the database (${err.reason}); check DATABASE_URL and that the server is up\n`)
      return 1
    }
    throw err
  }
  // A SIGHUP while starting: the files may have changed after they were read.
  if (reloadWhenStarted) void running.reloadTls()

  let stopping = false
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'Shutting down')
    const timer = setTimeout(() => {
      logger.warn('Shutdown took too long; exiting')
      logger.flush()
      process.exit(1)
    }, config.shutdownTimeoutMs + 1000)
    timer.unref()
    running.close().then(
      () => {
        logger.info('Stopped')
        logger.flush()
        process.exitCode = 0
      },
      (err: unknown) => {
        logger.error({ err }, 'Error during shutdown')
        process.exitCode = 1
      },
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)

  return undefined
}

main().then(
  (code) => {
    if (code !== undefined) process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`error: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exitCode = 1
  },
)
