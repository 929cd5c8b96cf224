/**
 * `kraftwerk sandbox`: throwaway Debian servers on this Linux machine, for
 * stage tests and the end-to-end suite. Sandbox names resolve as nodes, so
 * `kraftwerk setup-node demo` and `kraftwerk deploy demo` need no config.
 *
 * This module is loaded on every CLI start: it only registers commands; the
 * work lives in lib.ts, imported when a command runs.
 */
import type { Command as CliCommand } from 'commander';
// Types only at the top: the entry's values (errors) are imported where they are thrown.
import type { CommandKit, KraftwerkError, Plugin, SshTarget } from '../../core/index.ts';

const core = () => import('../../core/index.ts');

const PLUGIN_NAME = 'sandbox';
const DEFAULT_NAME = 'sandbox';

function registerCommands(program: CliCommand, kit: CommandKit): void {
  const sandbox = program
    .command('sandbox')
    .description('throwaway Debian servers on this Linux machine, usable as nodes (needs Linux and root)');

  sandbox
    .command('up')
    .argument('[name]', 'sandbox name, also its hostname and node name', DEFAULT_NAME)
    .option('--from-snapshot <key>', 'start from a snapshot saved after setup-node (used by the e2e suite)')
    .description('create and boot a sandbox server; prints its address')
    .action(async (name: string, opts: { fromSnapshot?: string }) => {
      const lib = await import('./lib.ts');
      // Checked before the progress display, so the message and exit code 2 reach the user unchanged.
      lib.assertSandboxSupport();
      (await import('./naming.ts')).checkSandboxName(name);
      let up: Awaited<ReturnType<typeof lib.sandboxUp>> | undefined;
      await kit.runTasks(
        [
          {
            title: `sandbox ${name}`,
            run: async (_ctx: unknown, task) => {
              up = await lib.sandboxUp(name, { fromSnapshot: opts.fromSnapshot, onProgress: (line) => task.output(line) });
              task.title(`sandbox ${name} at ${up.address}${up.reused ? ' (already up)' : ''}`);
            },
          },
        ],
        undefined,
      );
      if (!up) return;
      kit.log.info(
        `sandbox ${name} is up at ${up.address}\n` +
          `  kraftwerk sandbox ssh ${name}      log in\n` +
          `  kraftwerk setup-node ${name}       install the stack\n` +
          `  kraftwerk sandbox down ${name}     remove it`,
      );
    });

  sandbox
    .command('list')
    .description('list sandboxes with their address and state')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const lib = await import('./lib.ts');
      const rows = await lib.listSandboxes();
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      if (rows.length === 0) {
        kit.log.info('no sandboxes (create one with: kraftwerk sandbox up [name])');
        return;
      }
      const width = Math.max(4, ...rows.map((r) => r.name.length));
      const lines = [`${'NAME'.padEnd(width)}  ${'ADDRESS'.padEnd(15)}  STATE`];
      for (const r of rows) lines.push(`${r.name.padEnd(width)}  ${r.address.padEnd(15)}  ${r.state}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  sandbox
    .command('hosts')
    .argument('<name>', 'sandbox name')
    .argument('<domains...>', 'names to resolve to the sandbox on this machine')
    .description("point domains at a sandbox in this machine's /etc/hosts (removed again by sandbox down)")
    .action(async (name: string, domains: string[]) => {
      const lib = await import('./lib.ts');
      const address = await lib.addSandboxHosts(name, domains);
      kit.log.info(`/etc/hosts: ${address} ${domains.join(' ')} (until kraftwerk sandbox down ${name})`);
    });

  sandbox
    .command('ssh')
    .argument('<name>', 'sandbox name')
    .argument('[command...]', 'command to run (after --), each word passed as one argument; interactive shell when omitted')
    .description('log in to a sandbox with OpenSSH, or run a command there and return its exit code')
    .action(async (name: string, command: string[]) => {
      const lib = await import('./lib.ts');
      const target = await lib.sandboxTarget(name);
      if (!target) throw await unknownSandbox(name);
      const { sshArgv } = await import('./commands.ts');
      const { spawn } = await import('node:child_process');
      const { KraftwerkError } = await core();
      const [program, ...args] = sshArgv(target, command);
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn(program!, args, { stdio: 'inherit' });
        child.on('error', (e) =>
          reject(new KraftwerkError(`cannot run ssh: ${e.message}`, { hint: 'Install OpenSSH: apt-get install openssh-client' })),
        );
        child.on('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
      });
      process.exitCode = code;
    });

  sandbox
    .command('down')
    .argument('[name]', 'sandbox name', DEFAULT_NAME)
    .option('--all', 'remove every sandbox')
    .description('stop a sandbox and remove all of it (processes, network, mounts, files)')
    .action(async (name: string, opts: { all?: boolean }, cmd: CliCommand) => {
      const lib = await import('./lib.ts');
      lib.assertSandboxSupport();
      if (opts.all && cmd.args.length > 0) throw new (await core()).UsageError('give a sandbox name or --all, not both');
      if (!opts.all) (await import('./naming.ts')).checkSandboxName(name);
      let message = '';
      await kit.runTasks(
        [
          {
            title: opts.all ? 'remove every sandbox' : `remove sandbox ${name}`,
            run: async (_ctx: unknown, task) => {
              const onProgress = (line: string) => task.output(line);
              if (opts.all) {
                const removed = await lib.sandboxDownAll({ onProgress });
                message = removed.length ? `removed ${removed.join(', ')}` : 'no sandboxes to remove';
              } else {
                const existed = await lib.sandboxDown(name, { onProgress });
                message = existed ? `removed sandbox ${name}` : `no sandbox ${name} (nothing left behind either)`;
              }
            },
          },
        ],
        undefined,
      );
      kit.log.info(message);
    });
}

async function unknownSandbox(name: string): Promise<KraftwerkError> {
  const { UsageError } = await core();
  return new UsageError(`no sandbox named ${name}`, {
    hint: `Create it with: kraftwerk sandbox up ${name}   (see: kraftwerk sandbox list)`,
  });
}

/**
 * A sandbox name is a node: host = its address, its own key and known_hosts.
 * Consulted for every node name, so it only reads the state file, and never
 * fails for names it does not know.
 */
async function resolveNode(name: string): Promise<Partial<SshTarget> | undefined> {
  const { readState } = await import('./state.ts');
  let record;
  try {
    record = (await readState()).sandboxes[name];
  } catch {
    return undefined;
  }
  if (!record) return undefined;
  const { ensureProxyRunning, isRunning, targetOf } = await import('./lib.ts');
  if (!isRunning(record)) {
    const { KraftwerkError } = await core();
    throw new KraftwerkError(`sandbox ${name} is not running`, {
      hint: `Start it again with: kraftwerk sandbox up ${name}`,
    });
  }
  await ensureProxyRunning();
  return targetOf(record);
}

const sandbox: Plugin = {
  name: PLUGIN_NAME,
  description: 'throwaway Debian servers on this machine (kraftwerk sandbox up|list|ssh|down); sandbox names work as nodes',
  commands: registerCommands,
  resolveNode,
};

export default sandbox;
