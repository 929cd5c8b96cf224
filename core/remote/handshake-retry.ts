/**
 * sshd refuses new connections beyond MaxStartups (by default it starts to drop
 * unauthenticated ones at random once 10 are waiting) by closing them before
 * its banner. Many deploys started at once (a CI matrix, a script over every
 * site) hit that. Nothing was sent before the banner, so trying again is safe;
 * the waits are jittered so the dropped connections do not all come back
 * together.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Attempts in all, and the first wait; each wait doubles, up to about 6 s spent waiting. */
const ATTEMPTS = 5;
const FIRST_WAIT_MS = 250;

/** True when `stderr` of OpenSSH's client (rsync's ssh) says the server closed before its banner. */
export function sshClosedBeforeBanner(stderr: string): boolean {
  return /kex_exchange_identification|ssh_exchange_identification|Connection (closed|reset) by .* port \d+\s*$/m.test(stderr);
}

/** Run `attempt` until it succeeds, fails for another reason than `dropped`, or runs out of attempts. */
export async function retryDroppedHandshake<T>(attempt: () => Promise<T>, dropped: (error: unknown) => boolean): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= ATTEMPTS || !dropped(error)) throw error;
      const wait = FIRST_WAIT_MS * 2 ** (i - 1);
      await sleep(wait / 2 + Math.random() * wait);
    }
  }
}
