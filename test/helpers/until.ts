import assert from 'node:assert/strict'

/** Waits (10 ms steps, 5 s in all) until `condition` holds; fails naming `what` otherwise. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.ok(condition(), `timed out waiting for ${what}`)
}
