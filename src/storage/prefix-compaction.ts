/**
 * When a log that drops entries from its front should copy what it keeps into a new array:
 * once more than 1,024 entries were dropped and they are the larger part of the array. Then
 * memory follows what is kept, and each entry is copied at most about once on average.
 * RetainedLog, MessageLog and RetryIndex drop their prefixes this way.
 */
export function worthCompacting(dropped: number, held: number): boolean {
  return dropped > 1024 && dropped * 2 > held
}
