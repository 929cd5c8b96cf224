import { type CommandKit, UsageError } from '../../core/index.ts';

/** What create-node and destroy-node need from core (a subset of CommandKit, so tests can pass a small one). */
export type AwsKit = Pick<CommandKit, 'options' | 'log' | 'loadProject' | 'runTasks' | 'confirm'>;

/** How long to wait, and how often to look. Real clouds take a minute or two; tests shorten these. */
export interface Waits {
  pollMs: number;
  runningTimeoutMs: number;
  sshTimeoutMs: number;
  sshIntervalMs: number;
  sshAttemptMs: number;
}

export const DEFAULT_WAITS: Waits = {
  pollMs: 5000,
  runningTimeoutMs: 10 * 60_000,
  sshTimeoutMs: 5 * 60_000,
  sshIntervalMs: 3000,
  sshAttemptMs: 5000,
};

export interface AwsDeps {
  kit: AwsKit;
  /** Home folder for ~ in --key (default: os.homedir()). */
  home?: string;
  /** The hosts file --hosts edits (default /etc/hosts). */
  hostsFile?: string;
  waits?: Partial<Waits>;
}

/**
 * Node names become the instance's Name tag, its host name (user data) and a key
 * in kraftwerk.yaml, so they must be valid host name labels.
 */
export function checkNodeName(name: string): void {
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(name)) {
    throw new UsageError(`invalid node name ${JSON.stringify(name)}: use letters, digits and -, at most 63 characters`, {
      hint: 'The name becomes the server\'s host name, e.g. web1 or shop-production.',
    });
  }
}

/** The EC2 key pair create-node imports for node `name`. */
export const keyPairName = (name: string) => `kraftwerk-${name}`;
