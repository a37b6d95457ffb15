/** setTimeout's longest delay (~24.8 days); a later moment is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Calls `then` once the clock reaches `expiresAt` (when a token stops being accepted), at once if
 * it already has. The clock is read again whenever a timer fires: timers may fire a little early,
 * and a clock may step back. Returns a function that cancels it; the timer keeps no process alive.
 */
export function whenExpired(expiresAt: number, then: () => void): () => void {
  let timer: NodeJS.Timeout | undefined
  const check = () => {
    const left = expiresAt - Date.now()
    if (left <= 0) then()
    else timer = setTimeout(check, Math.min(left, MAX_TIMER_MS)).unref()
  }
  check()
  return () => clearTimeout(timer)
}
