/**
 * The tools a user would pick instead of Kraftwerk, doing the same deploy of
 * examples/flask-hello to the same sandbox, for bench/deploy:
 *
 *   ansible = bench/peers/deploy.yml with Debian's `ansible`: synchronize the
 *             tree, render the 2 config templates (uWSGI, nginx), reload the
 *             app; pipelining and ControlPersist on, no fact gathering
 *   fabric  = bench/peers/fabric_deploy.py with Debian's `python3-fabric`:
 *             rsync of the tree, then the reload over one Fabric connection
 *
 * Both install their Debian package when it is missing. Each writes into a
 * folder of its own in root's home on the node (root only), so neither
 * touches the release Kraftwerk deployed; both end with the same reload as
 * the floor (the live slot's graceful reload).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildRsyncArgs } from '../core/remote/rsync.ts';
import { type BenchSandbox, BenchFailure, REPO_ROOT, ensureDebianPackage, outputTail, reloadCommand, run, sshOk, succeeds } from './lib.ts';

const PEERS_DIR = path.join(REPO_ROOT, 'bench', 'peers');
/** Debian's Python, where python3-fabric installs (a python3 earlier in PATH, e.g. pyenv's, would not see it). */
const DEBIAN_PYTHON = '/usr/bin/python3';

export interface Peer {
  readonly name: string;
  /** Install the tool, make its folder on the node, and do the unmeasured first deploy (a full copy). */
  prepare(): Promise<void>;
  /** One deploy; wall time in ms. */
  measure(): Promise<number>;
  cleanup(): Promise<void>;
}

interface PeerContext {
  sandbox: BenchSandbox;
  /** The project folder (its name is the site's name). */
  source: string;
  site: string;
  domain: string;
  wsgi: string;
  workers: number;
}

const peerDir = (ctx: PeerContext, peer: string) => `/root/kraftwerk-bench-${peer}-${ctx.site}`;

async function timedOk(argv: readonly string[], what: string, env?: NodeJS.ProcessEnv): Promise<number> {
  const r = await run(argv, { env, timeoutMs: 5 * 60_000 });
  if (r.code !== 0) throw new BenchFailure(`${what} failed (exit ${r.code}):\n${outputTail(r)}`);
  return r.ms;
}

class AnsiblePeer implements Peer {
  readonly name = 'ansible';
  private work?: string;
  private argv: string[] = [];
  private env: NodeJS.ProcessEnv = {};

  constructor(private readonly ctx: PeerContext) {}

  async prepare(): Promise<void> {
    await ensureDebianPackage('ansible', () => succeeds(['ansible-playbook', '--version']));
    const { sandbox, site } = this.ctx;
    const t = sandbox.target;
    // Inventory, config and ControlPersist sockets in a temp folder of this run (this user's only).
    this.work = await mkdtemp(path.join(tmpdir(), 'kraftwerk-bench-ansible-'));
    await mkdir(path.join(this.work, 'cp'), { mode: 0o700 });
    const sshArgs = [
      '-o ControlMaster=auto',
      '-o ControlPersist=60s',
      '-o IdentitiesOnly=yes',
      `-o UserKnownHostsFile=${t.knownHostsFiles.join(' ')}`,
      '-o GlobalKnownHostsFile=/dev/null',
      '-o StrictHostKeyChecking=yes',
    ].join(' ');
    await writeFile(
      path.join(this.work, 'inventory.ini'),
      `[bench]\n${sandbox.name} ansible_host=${t.host} ansible_port=${t.port} ansible_user=${t.user} ansible_ssh_private_key_file=${t.identityFiles[0]}\n`,
    );
    await writeFile(
      path.join(this.work, 'ansible.cfg'),
      [
        '[defaults]',
        `inventory = ${path.join(this.work, 'inventory.ini')}`,
        'interpreter_python = /usr/bin/python3',
        'retry_files_enabled = False',
        `local_tmp = ${path.join(this.work, 'tmp')}`,
        '[ssh_connection]',
        'pipelining = True',
        `ssh_args = ${sshArgs}`,
        `control_path_dir = ${path.join(this.work, 'cp')}`,
        '',
      ].join('\n'),
    );
    this.env = { ANSIBLE_CONFIG: path.join(this.work, 'ansible.cfg'), ANSIBLE_HOME: this.work, ANSIBLE_NOCOLOR: '1' };
    const [module, callable] = this.ctx.wsgi.split(':');
    const vars = {
      src: this.ctx.source,
      dest: peerDir(this.ctx, this.name),
      site,
      domain: this.ctx.domain,
      wsgi_module: module,
      wsgi_callable: callable ?? 'application',
      workers: this.ctx.workers,
      reload: reloadCommand(site),
    };
    this.argv = ['ansible-playbook', '-e', JSON.stringify(vars), path.join(PEERS_DIR, 'deploy.yml')];
    await sshOk(sandbox, `rm -rf ${vars.dest} && mkdir -p -m 700 ${vars.dest}`, `making ${vars.dest}`);
    await this.measure();
  }

  measure(): Promise<number> {
    return timedOk(this.argv, 'the Ansible playbook', this.env);
  }

  async cleanup(): Promise<void> {
    if (!this.work) return;
    // Ends the ControlPersist master, which would otherwise outlive the sandbox by a minute.
    await run(['ssh', '-o', `ControlPath=${path.join(this.work, 'cp')}/%C`, '-O', 'exit', this.ctx.sandbox.target.host], { timeoutMs: 10_000 }).catch(() => undefined);
    await rm(this.work, { recursive: true, force: true });
  }
}

class FabricPeer implements Peer {
  readonly name = 'fabric';
  private argv: string[] = [];

  constructor(private readonly ctx: PeerContext) {}

  async prepare(): Promise<void> {
    await ensureDebianPackage('python3-fabric', () => succeeds([DEBIAN_PYTHON, '-c', 'import fabric']));
    const t = this.ctx.sandbox.target;
    const dest = peerDir(this.ctx, this.name);
    const spec = {
      host: t.host,
      user: t.user,
      port: t.port,
      key_file: t.identityFiles[0],
      known_hosts: t.knownHostsFiles[0],
      rsync: ['rsync', ...buildRsyncArgs({ target: t, source: this.ctx.source, dest: `${dest}/app`, excludes: [] })],
      reload: reloadCommand(this.ctx.site),
    };
    this.argv = [DEBIAN_PYTHON, path.join(PEERS_DIR, 'fabric_deploy.py'), JSON.stringify(spec)];
    await sshOk(this.ctx.sandbox, `rm -rf ${dest} && mkdir -p -m 700 ${dest}`, `making ${dest}`);
    await this.measure();
  }

  measure(): Promise<number> {
    return timedOk(this.argv, 'the Fabric deploy');
  }

  async cleanup(): Promise<void> {}
}

export function makePeers(ctx: PeerContext): Peer[] {
  return [new AnsiblePeer(ctx), new FabricPeer(ctx)];
}
