// In-process retries with exponential backoff, for errors that are expected to
// go away on their own (a restarted database, a dropped connection, a deadlock).

import { setTimeout as sleep } from "node:timers/promises";

import { describeError } from "./log.js";

/**
 * @typedef {object} RetryOptions
 * @property {(error: unknown) => boolean} isTransient Only these are retried.
 * @property {import("./log.js").Logger} log
 * @property {string} what What is being tried, for the log line.
 * @property {number} [tries] Attempts in all, the first one included.
 * @property {number} [baseMs] First delay; it doubles after every failure...
 * @property {number} [capMs] ...up to this.
 */

export const DEFAULT_TRIES = 6;

/**
 * Run `fn` until it succeeds, fails with a non-transient error, or runs out of tries
 * (then the last error is thrown; the caller decides what a persistent failure means).
 * @template T
 * @param {() => Promise<T>} fn
 * @param {RetryOptions} options
 * @returns {Promise<T>}
 */
export async function withRetry(fn, options) {
  const { isTransient, log, what, tries = DEFAULT_TRIES, baseMs = 100, capMs = 3200 } = options;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn();
    } catch (error) {
      if (!isTransient(error) || attempt >= tries) throw error;
      const delayMs = Math.min(capMs, baseMs * 2 ** (attempt - 1));
      log.warning("transient error, retrying", {
        what,
        try: attempt,
        of: tries,
        delay_ms: delayMs,
        error: describeError(error),
      });
      await sleep(delayMs);
    }
  }
}
