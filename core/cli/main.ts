import { Command, CommanderError } from 'commander';
import { KraftwerkError } from '../errors.ts';
import { maskSecrets } from '../shell/sh.ts';
import { CoreKit, type GlobalOptions } from './kit.ts';
import { kraftwerkVersion } from '../version.ts';
import { type BuiltinPlugins, loadBuiltins } from '../engine/registry.ts';
// The one place in core that names the built-in plugins: it hands their table to the kit.
import { stackPlugins } from '../../plugins/builtins.ts';
import { toolPlugins } from '../../tools/builtins.ts';

/** The one place core learns the built-in plugins: the stack's table and the tools'. */
const builtins: BuiltinPlugins = { ...stackPlugins, load: { ...stackPlugins.load, ...toolPlugins.load }, commands: toolPlugins.commands };

/**
 * The command line. Only commander and the small command plugins are loaded
 * up front; each command imports what it needs when it runs, so `--help`
 * stays fast (and never loads the AWS SDK).
 */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('kraftwerk');
  const globals = (): GlobalOptions => {
    const o = program.opts();
    return {
      dryRun: Boolean(o.dryRun),
      verbose: Boolean(o.verbose),
      quiet: Boolean(o.quiet),
      config: o.config,
      acceptNewHostKey: Boolean(o.acceptNewHostKey),
      yes: Boolean(o.yes),
    };
  };
  const kit = new CoreKit(globals, builtins);

  program
    .description('Deploy and run Python WSGI sites on your own Debian servers over SSH.')
    .version(await kraftwerkVersion(), '-V, --version')
    .option('-v, --verbose', 'show every remote command and its output')
    .option('-q, --quiet', 'print only errors')
    .option('-n, --dry-run', 'print every remote command and file that would be written; change nothing')
    .option('-c, --config <file>', 'use this config file instead of searching for kraftwerk.yaml')
    .option('--accept-new-host-key', "record an unknown server's host key in known_hosts (a changed key is always refused)")
    .option('-y, --yes', 'answer yes to confirmations (for scripts)')
    .showHelpAfterError('(run kraftwerk --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  const run =
    <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
    async (...args: A) => {
      try {
        await fn(...args);
      } finally {
        await kit.close();
      }
    };

  program
    .command('init')
    .description('write a commented kraftwerk.yaml for the project in this folder')
    .option('-f, --force', 'overwrite an existing kraftwerk.yaml')
    .action(
      run(async (opts: { force?: boolean }) => {
        const { initCommand } = await import('./actions/init.ts');
        await initCommand({ cwd: process.cwd(), force: opts.force, log: kit.log, builtins });
      }),
    );

  program
    .command('setup-node')
    .argument('[node]', 'server, group or sandbox name (default: default_node)')
    .description('install and configure the Kraftwerk stack on a Debian server (idempotent)')
    .action(
      run(async (node?: string) => {
        const { setupNodeCommand } = await import('./actions/setup-node.ts');
        await setupNodeCommand(kit, node);
      }),
    );

  program
    .command('deploy')
    .argument('[node]', 'server, group or sandbox name (default: default_node)')
    .description('ship the project with rsync and bring the new release live')
    .option('-u, --upgrade-packages', 'reinstall requirements even if requirements.txt did not change')
    .option('--lock-wait <duration>', "wait this long for another deploy's lock (e.g. 90s, 5m)", '0')
    .option('-f, --force', 'deploy a new release even when nothing changed since the live one')
    .option('--timings', "print each phase's and each task's wall time at the end")
    .option('--preview <name>', 'deploy as the preview NAME: its own site <site>-NAME at NAME.<domain> (or NAME.<preview_domain>) on the node')
    .option('--allow-destructive-migrations', 'run Django migrations that break the release still serving (DeleteModel, RemoveField, …)')
    .option('--with-data', "with --preview: copy the site's database and uploads into the preview before its release commands")
    .option('--all-at-once', 'behind a load balancer too, switch every web node of the group together (default there: one at a time, each taken out of the upstream first)')
    .action(
      run(async (node: string | undefined, opts: { upgradePackages?: boolean; lockWait?: string; force?: boolean; timings?: boolean; preview?: string; withData?: boolean; allowDestructiveMigrations?: boolean; allAtOnce?: boolean }) => {
        if (opts.preview !== undefined || opts.withData) {
          const { deployPreviewCommand } = await import('./actions/previews.ts');
          return deployPreviewCommand(kit, node, opts);
        }
        const { deployCommand } = await import('./actions/deploy.ts');
        await deployCommand(kit, node, opts);
      }),
    );

  program
    .command('previews')
    .argument('[node]', 'server, group or sandbox name (default: default_node)')
    .description('list the previews of this project on a node (deploy --preview NAME): name, age, live release, URL')
    .option('--json', 'machine-readable output')
    .action(
      run(async (node: string | undefined, opts: { json?: boolean }) => {
        const { previewsCommand } = await import('./actions/previews.ts');
        await previewsCommand(kit, node, opts);
      }),
    );

  program
    .command('releases')
    .argument('[node]', 'server, group or sandbox name')
    .description('list the releases on a node: time, deployer, git revision, status')
    .option('--json', 'machine-readable output')
    .action(
      run(async (node: string | undefined, opts: { json?: boolean }) => {
        const { releasesCommand } = await import('./actions/releases.ts');
        await releasesCommand(kit, node, opts);
      }),
    );

  program
    .command('rollback')
    .argument('[node]', 'server, group or sandbox name')
    .description('switch back to the previous good release (or --to <id>) with its own venv and configuration')
    .option('--to <id>', 'the release to bring back (see kraftwerk releases)')
    .option('--with-data', 'also restore the database snapshot taken before the live release ran its release commands')
    .option('--lock-wait <duration>', "wait this long for another deploy's lock (e.g. 90s, 5m)", '0')
    .action(
      run(async (node: string | undefined, opts: { to?: string; withData?: boolean; lockWait?: string }) => {
        const { rollbackCommand } = await import('./actions/rollback.ts');
        await rollbackCommand(kit, node, opts);
      }),
    );

  program
    .command('unlock')
    .argument('[node]', 'server, group or sandbox name')
    .description("remove a site's deploy lock by hand (when its holder is gone)")
    .action(
      run(async (node?: string) => {
        const { unlockCommand } = await import('./actions/releases.ts');
        await unlockCommand(kit, node);
      }),
    );

  program
    .command('doctor')
    .argument('[node]', 'server, group or sandbox name (default: default_node; none: this machine only)')
    .description('check this machine and the node: ssh, rsync, keys, host key, setup, disk, clock, services, certificates')
    .option('--json', 'machine-readable output: an array of {check, node, ok, level, detail, hint, plugin}')
    .action(
      run(async (node: string | undefined, opts: { json?: boolean }) => {
        const { doctorCommand } = await import('./actions/doctor.ts');
        await doctorCommand(kit, node, opts);
      }),
    );

  program
    .command('plugins')
    .description('list the plugins active for this project and the hooks each taps')
    .option('--json', 'machine-readable output')
    .action(
      run(async (opts: { json?: boolean }) => {
        const { pluginsCommand } = await import('./actions/plugins.ts');
        await pluginsCommand(kit, opts);
      }),
    );

  program
    .command('schema')
    .description('print the JSON Schema of kraftwerk.yaml (for editor completion)')
    .action(
      run(async () => {
        const [{ schemaCommand }, { builtinConfigSchema }] = await Promise.all([import('../config/jsonschema.ts'), import('../engine/project.ts')]);
        process.stdout.write(schemaCommand(await builtinConfigSchema(builtins)));
      }),
    );

  // status, logs, run, env, backup(s), dump, load, sync-services, destroy
  const { registerOpsCommands } = await import('./ops-commands.ts');
  registerOpsCommands(program, kit, run);

  for (const plugin of await loadBuiltins(builtins, builtins.commands)) plugin.commands?.(program, kit);

  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportError(err, globals());
  }
}

function reportError(err: unknown, options: GlobalOptions): number {
  if (err instanceof CommanderError) {
    // Help and version "errors" are normal exits; the rest is bad usage.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    return 2;
  }
  const red = (s: string) => (process.env.NO_COLOR || !process.stderr.isTTY ? s : `\u001b[31m${s}\u001b[39m`);
  if (err instanceof KraftwerkError) {
    // No secret value in what a failure prints (a remote command's output is in its message).
    process.stderr.write(`${red('error:')} ${maskSecrets(err.message)}\n`);
    if (err.hint) process.stderr.write(`  ${maskSecrets(err.hint).split('\n').join('\n  ')}\n`);
    if (options.verbose && err.cause instanceof Error && !(err.cause instanceof KraftwerkError)) {
      process.stderr.write(`${maskSecrets(err.cause.stack ?? '')}\n`);
    }
    return err.exitCode;
  }
  // Not a user error: a bug. Show the stack so it can be reported.
  process.stderr.write(`${red('internal error:')} ${maskSecrets(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`);
  process.stderr.write('This is a bug in Kraftwerk; please report it with the output above.\n');
  return 1;
}
