/**
 * The day-to-day commands on the command line: status, logs, run, env,
 * backup(s), backup verify, dump, load, sync-services, destroy. Loaded at every start, so
 * only commander is imported here; each action imports its command module.
 */
import type { Command } from 'commander';
import type { CoreKit } from './kit.ts';

type Wrap = <A extends unknown[]>(fn: (...args: A) => Promise<void>) => (...args: A) => Promise<void>;

/** The raw words after this subcommand's name (commander drops `--`, and the global -n would eat `logs -n 5`). */
function wordsAfter(cmd: Command): string[] {
  const raw = (cmd.parent as (Command & { rawArgs: string[] }) | null)?.rawArgs.slice(2) ?? [];
  const at = raw.indexOf(cmd.name());
  return at < 0 ? [] : raw.slice(at + 1);
}

const NODE = 'server, group or sandbox name (default: default_node)';
/** The flags of `logs` for the built-in plugins' log sources (LogSource.flag), declared here for --help. */
const LOG_SOURCE_FLAGS = ['nginx'];
/** What the built-in plugins' destroy taps remove (destroy's help and its question). */
const DESTROYED = 'services, nginx site, cron jobs, database, Redis user';

export function registerOpsCommands(program: Command, kit: CoreKit, run: Wrap): void {
  program
    .command('status')
    .argument('[node]', NODE)
    .description('live release, services, disk use and last backup of the sites on a node')
    .option('--json', 'machine-readable output (an array, one object per node)')
    .action(
      run(async (node: string | undefined, opts: { json?: boolean }) => {
        const { statusCommandRun } = await import('./actions/status.ts');
        await statusCommandRun(kit, node, opts);
      }),
    );

  program
    .command('logs')
    .argument('[node]', NODE)
    .description('show (-f: follow) the logs of the site: web, workers, cron jobs; --nginx for nginx')
    .option('-p, --process <name>', 'one log only: web, a process from `processes:`, or cron-<job>')
    .option('-n, --lines <n>', 'lines to show from the end of each log (default 50)')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('--nginx', "nginx's access and error log of the site")
    .allowExcessArguments()
    .action(
      run(async (_node: unknown, _opts: unknown, cmd: Command) => {
        // logs changes nothing, and its -n is a line count, not the global --dry-run.
        program.setOptionValue('dryRun', false);
        const { logsCommandRun } = await import('./actions/logs.ts');
        process.exitCode = await logsCommandRun(kit, wordsAfter(cmd), LOG_SOURCE_FLAGS);
      }),
    );

  program
    .command('run')
    .argument('[node]', NODE)
    .argument('[command...]', 'the command, after --')
    .usage('[options] [node] -- <command...>')
    .description("run a command in the live release as the site's user, with its environment and venv; exit code passed through")
    .option('-i, --interactive', 'give the command a terminal (e.g. a Django shell); without a command, open a shell')
    .action(
      run(async (_node: unknown, _words: unknown, opts: { interactive?: boolean }, cmd: Command) => {
        const { runCommand, splitRunArgs } = await import('./actions/run.ts');
        const project = await kit.loadProject();
        const { node, words } = splitRunArgs(wordsAfter(cmd), Object.keys(project.site.config.nodes));
        process.exitCode = await runCommand(kit, node, words, opts);
      }),
    );

  const env = program
    .command('env')
    .argument('[node]', NODE)
    .description("show the site's environment on the server (values masked unless --show); env set / env unset change it")
    .option('--show', 'print the values')
    .action(
      run(async (node: string | undefined, opts: { show?: boolean }) => {
        const { envShowCommand } = await import('./actions/env.ts');
        await envShowCommand(kit, node, opts);
      }),
    );
  env
    .command('set')
    .argument('[words...]', '[node] NAME (value from stdin), or [node] NAME=value …')
    .description(
      'set variables on the server (kept across deploys and rollbacks, override kraftwerk.yaml) and reload the site gracefully. ' +
        'NAME alone reads the value from stdin (typed without echo at a terminal); NAME=value on the command line works but is visible to other local users',
    )
    .option('-N, --node <node>', 'the node (or give it before the first NAME)')
    .option('--from-file <file>', 'set every variable of a dotenv file: NAME=value lines, optional `export `, values quoted with \' (literal) or " (\\n \\t \\" \\\\ escapes), # comments; nothing is expanded')
    .action(
      run(async (words: string[], opts: { node?: string; fromFile?: string }) => {
        const { argvWarning, envChangeCommand, parseSetWords, readDotenvFile, readValueFromStdin, splitNodeArg } = await import('./actions/env.ts');
        const { node, rest } = splitNodeArg(await kit.loadProject(), words, 'set', opts.node, { fromFile: Boolean(opts.fromFile) });
        const request = parseSetWords(rest, { fromFile: Boolean(opts.fromFile) });
        const onCommandLine = Object.keys(request.assignments);
        if (onCommandLine.length) kit.log.warn(argvWarning(onCommandLine));
        const set = {
          ...(opts.fromFile ? readDotenvFile(process.cwd(), opts.fromFile) : {}),
          ...request.assignments,
          ...(request.fromStdin ? { [request.fromStdin]: await readValueFromStdin(request.fromStdin) } : {}),
        };
        await envChangeCommand(kit, node, { set });
      }),
    );
  env
    .command('pull')
    .argument('[node]', NODE)
    .description('print the variables stored with env set on the node, as a dotenv file for env set --from-file (values masked unless --reveal)')
    .option('--reveal', 'print the values')
    .action(
      run(async (node: string | undefined, opts: { reveal?: boolean }) => {
        const { envPullCommand } = await import('./actions/env.ts');
        await envPullCommand(kit, node, opts);
      }),
    );
  env
    .command('unset')
    .argument('<names...>', '[node] NAME …')
    .description('remove variables set with env set, and reload the site gracefully')
    .option('-N, --node <node>', 'the node (or a node from kraftwerk.yaml before the first NAME)')
    .action(
      run(async (words: string[], opts: { node?: string }) => {
        const { envChangeCommand, checkNames, splitNodeArg } = await import('./actions/env.ts');
        const { node, rest } = splitNodeArg(await kit.loadProject(), words, 'unset', opts.node);
        await envChangeCommand(kit, node, { unset: checkNames(rest) });
      }),
    );

  const backup = program
    .command('backup')
    .argument('[node]', NODE)
    .argument('[id]', 'with --download: the backup to download (default: the newest)')
    .description('take a backup now (database, uploads, …) into /srv/<site>/backups; --download copies one here')
    .option('--download', 'copy a backup from the node to this machine instead')
    .option('--to <dir>', 'with --download: where to put it (default ~/kraftwerk-backups/<site>/<node>/<id>)')
    .action(
      run(async (node: string | undefined, id: string | undefined, opts: { download?: boolean; to?: string }) => {
        const dump = await import('./actions/dump.ts');
        if (opts.download) {
          // `backup --download <id>` with the default node: a dump id is never a node name.
          if (node && !id && /^\d{8}T\d{6}Z/.test(node)) [node, id] = [undefined, node];
          await dump.downloadCommand(kit, node, id, opts);
        } else {
          if (id) throw new (await import('../errors.ts')).UsageError('an id is only taken with --download');
          await dump.dumpCommand(kit, node, 'backup');
        }
      }),
    );

  backup
    .command('verify')
    .argument('[node]', NODE)
    .argument('[id]', 'the backup to verify (default: the newest; see kraftwerk backups)')
    .description('restore a backup into a scratch database and folder on the node, check it, remove them; exit 1 when it is bad')
    .action(
      run(async (node: string | undefined, id: string | undefined) => {
        // `backup verify <id>` with the default node: a dump id is never a node name.
        if (node && !id && /^\d{8}T\d{6}Z/.test(node)) [node, id] = [undefined, node];
        const { verifyBackupCommand } = await import('./actions/dump.ts');
        await verifyBackupCommand(kit, node, id);
      }),
    );

  program
    .command('backups')
    .argument('[node]', NODE)
    .description('list the backups and dumps of the site on a node')
    .option('--json', 'machine-readable output')
    .action(
      run(async (node: string | undefined, opts: { json?: boolean }) => {
        const { backupsCommand } = await import('./actions/dump.ts');
        await backupsCommand(kit, node, opts);
      }),
    );

  program
    .command('dump')
    .argument('[node]', NODE)
    .description("dump every service's data (database, uploads) into a timestamped folder in /srv/<site>/backups")
    .action(
      run(async (node: string | undefined) => {
        const { dumpCommand } = await import('./actions/dump.ts');
        await dumpCommand(kit, node, 'dump');
      }),
    );

  program
    .command('load')
    .argument('<node-or-id>', 'the node (optional: default_node; a group whose nodes declare roles: each loads its part) followed by the dump id')
    .argument('[id]', 'the dump to load (see kraftwerk backups)')
    .usage('[options] [node] <id>')
    .description('replace the data of the site with a dump; takes a dump of the current data first')
    .option('--no-backup', 'do not take a dump of the current data first')
    .action(
      run(async (node: string, id: string | undefined, opts: { backup?: boolean }) => {
        // One argument is the id (default node).
        if (id === undefined) [node, id] = [undefined as unknown as string, node];
        const { loadCommand } = await import('./actions/dump.ts');
        await loadCommand(kit, node, id, opts);
      }),
    );

  program
    .command('sync-services')
    .argument('<from>', 'node to copy the data from')
    .argument('<to>', 'node whose data is replaced')
    .description('copy the data of the site (database, uploads) from one node to another, through this machine')
    .option('--no-backup', 'do not take a dump of the target first')
    .action(
      run(async (from: string, to: string, opts: { backup?: boolean }) => {
        const { syncServicesCommand } = await import('./actions/sync-services.ts');
        await syncServicesCommand(kit, from, to, opts);
      }),
    );

  program
    .command('destroy')
    .argument('[node]', NODE)
    .description(`remove the site from a node: ${DESTROYED}, folders`)
    .option('--keep-data', 'keep uploads and backups (a last dump is taken first)')
    .option('--preview <name>', 'remove the preview NAME (deploy --preview NAME) instead; the site itself stays')
    .action(
      run(async (node: string | undefined, opts: { keepData?: boolean; preview?: string }) => {
        if (opts.preview !== undefined) {
          const { destroyPreviewCommand } = await import('./actions/previews.ts');
          return destroyPreviewCommand(kit, node, opts.preview, opts, DESTROYED);
        }
        const { destroyCommand } = await import('./actions/destroy.ts');
        await destroyCommand(kit, node, opts, DESTROYED);
      }),
    );
}
