import { AsyncSeriesHook } from 'tapable';
import type {
  DeployContext,
  DestroyContext,
  DumpContext,
  EnvironmentContext,
  EnvironmentVars,
  FingerprintParts,
  HealthCheckRequest,
  NodeContext,
  OutcomeContext,
  ReloadContext,
  SetupContext,
  SetupPackages,
  StatusReport,
  SwitchSteps,
} from './context.ts';
import { PluginError } from '../errors.ts';
import { TaskList } from './tasks.ts';
import { type HasTopology, runsHere } from './topology.ts';

/**
 * Every hook of Kraftwerk, declared once. Deploy runs
 * preSync → sync → install → configure → restart; the other commands have
 * their own hooks. Taps add tasks to the TaskList they receive; core runs them.
 */
export function createHooks() {
  return Object.freeze({
    /** Checks before anything changes: config, node state, requirements. */
    preSync: new AsyncSeriesHook<[DeployContext, TaskList<DeployContext>]>(['deploy', 'tasks']),
    /** Transfer the project into the new release folder. */
    sync: new AsyncSeriesHook<[DeployContext, TaskList<DeployContext>]>(['deploy', 'tasks']),
    /** Virtualenv, requirements, per-site packages. */
    install: new AsyncSeriesHook<[DeployContext, TaskList<DeployContext>]>(['deploy', 'tasks']),
    /** Render and write configuration, provision services, run release commands. */
    configure: new AsyncSeriesHook<[DeployContext, TaskList<DeployContext>]>(['deploy', 'tasks']),
    /** Switch `current`, reload, health check. */
    restart: new AsyncSeriesHook<[DeployContext, TaskList<DeployContext>]>(['deploy', 'tasks']),
    /** setup-node: add Debian packages and node-wide setup tasks. */
    setupNode: new AsyncSeriesHook<[SetupContext, TaskList<SetupContext>, SetupPackages]>([
      'setup',
      'tasks',
      'packages',
    ]),
    /** Environment variables a plugin provides to the site. */
    environment: new AsyncSeriesHook<[EnvironmentContext, EnvironmentVars]>(['context', 'env']),
    /** destroy: remove what the plugin created for the site. */
    destroy: new AsyncSeriesHook<[DestroyContext, TaskList<DestroyContext>]>(['context', 'tasks']),
    /** dump: write the plugin's data of the site into the dump folder. */
    dump: new AsyncSeriesHook<[DumpContext, TaskList<DumpContext>]>(['context', 'tasks']),
    /** load: restore the plugin's data from the dump folder. */
    load: new AsyncSeriesHook<[DumpContext, TaskList<DumpContext>]>(['context', 'tasks']),
    /**
     * verify: prove the plugin's share of the dump folder restores (into scratch space on the
     * node that no site can reach, removed again, also on failure); a failed check throws.
     * Like dump tasks, plain commands: the scheduled backup script runs them too.
     */
    verify: new AsyncSeriesHook<[DumpContext, TaskList<DumpContext>]>(['context', 'tasks']),
    /** status: report the plugin's state for the site (taps may use ctx.remote: core connects before calling it). */
    status: new AsyncSeriesHook<[NodeContext, StatusReport]>(['context', 'report']),
    /**
     * reload: the site's environment changed outside a deploy (`kraftwerk env set`, a load):
     * add files derived from it to ctx.files and reload the site's services gracefully.
     */
    reload: new AsyncSeriesHook<[ReloadContext, TaskList<ReloadContext>]>(['context', 'tasks']),
    /**
     * outcome: a deploy or a rollback ended (deployed, failed, rolled_back); called once for all its
     * nodes, after its last line of progress. Taps tell someone and run no task; a tap that throws
     * is a warning, and the taps after it still run: it never changes the command's result.
     */
    outcome: new AsyncSeriesHook<[OutcomeContext]>(['outcome']),
  });
}

export type Hooks = ReturnType<typeof createHooks>;
export type HookName = keyof Hooks;
export const hookNames = [
  'preSync',
  'sync',
  'install',
  'configure',
  'restart',
  'setupNode',
  'environment',
  'destroy',
  'dump',
  'load',
  'verify',
  'status',
  'reload',
  'outcome',
] as const satisfies readonly HookName[];

/** Deploy phases in the order they run. */
export const deployPhases = ['preSync', 'sync', 'install', 'configure', 'restart'] as const;
export type DeployPhase = (typeof deployPhases)[number];

/** Which plugin tapped which hook, for `kraftwerk plugins`. */
export type TapRegistry = Map<string, Set<HookName>>;

/**
 * Wrap every tap of every hook so that (1) a failure names the plugin, the hook
 * and the node, and (2) collectors passed to the tap record the plugin's name.
 */
export function interceptHooks(hooks: Hooks, registry: TapRegistry = new Map(), placement?: TapPlacement): TapRegistry {
  if (placement) placementOf.set(hooks, placement);
  for (const name of hookNames) interceptTaps(hooks[name] as AsyncSeriesHook<unknown[]>, name, registry, placement);
  return registry;
}

/** The roles on whose nodes a plugin's taps run (`Plugin.runsOn`), by plugin name; undefined: every node. */
export type TapPlacement = (plugin: string) => readonly string[] | undefined;

/** interceptHooks' placement, for the lifecycle hooks made later for the same hooks. */
const placementOf = new WeakMap<Hooks, TapPlacement>();

/**
 * Hooks whose taps run whatever the node's roles: the environment describes the app wherever its
 * code is (a web node's DATABASE_URL comes from the database plugin), and an outcome has no node.
 */
const EVERY_NODE_HOOKS: ReadonlySet<string> = new Set<HookName>(['environment', 'outcome']);

/** A tap of `plugin` sits this call out: its context is a node whose roles are not the plugin's. */
function elsewhere(placement: TapPlacement | undefined, hookName: string, plugin: string, args: unknown[]): boolean {
  if (!placement || EVERY_NODE_HOOKS.has(hookName)) return false;
  const ctx = args[0] as Partial<HasTopology> | undefined;
  return Boolean(ctx?.topology) && !runsHere(placement(plugin), ctx as HasTopology);
}

/**
 * Hooks whose taps' failures are warnings (on the context's `log`) rather than errors: what they
 * do comes after the command's result, which they must not change, nor keep the next tap from running.
 */
const WARNING_HOOKS: ReadonlySet<string> = new Set<HookName>(['outcome']);

/** interceptHooks for one hook; `registry` (when given) records who tapped it, `placement` where each plugin's taps run. */
function interceptTaps(hook: AsyncSeriesHook<unknown[]>, name: string, registry?: TapRegistry, placement?: TapPlacement): void {
  const warnOnly = WARNING_HOOKS.has(name);
  hook.intercept({
    register(tap) {
      const plugin = tap.name;
      if (registry && !registry.has(plugin)) registry.set(plugin, new Set());
      registry?.get(plugin)!.add(name as HookName);
      const fn = tap.fn as (...args: unknown[]) => unknown;
      const scoped = (args: unknown[]) =>
        args.map((a) =>
          a && typeof a === 'object' && 'forPlugin' in a && typeof (a as { forPlugin: unknown }).forPlugin === 'function'
            ? (a as { forPlugin(p: string): unknown }).forPlugin(plugin)
            : a,
        );
      const named = (args: unknown[], err: unknown) => PluginError.of(plugin, name, (args[0] as { node?: string } | undefined)?.node, err);
      // undefined: the failure was a warning, the hook goes on.
      const failure = (args: unknown[], err: unknown): PluginError | undefined => {
        const error = named(args, err);
        if (!warnOnly) return error;
        (args[0] as { log: { warn(m: string): void } }).log.warn(error.message);
        return undefined;
      };
      if (tap.type === 'promise') {
        tap.fn = async (...args: unknown[]) => {
          if (elsewhere(placement, name, plugin, args)) return;
          try {
            return await fn(...scoped(args));
          } catch (err) {
            const error = failure(args, err);
            if (error) throw error;
          }
        };
      } else if (tap.type === 'async') {
        tap.fn = (...args: unknown[]) => {
          const cb = args.pop() as (err?: unknown, r?: unknown) => void;
          if (elsewhere(placement, name, plugin, args)) return cb();
          try {
            fn(...scoped(args), (err?: unknown, r?: unknown) => cb(err ? failure(args, err) : undefined, r));
          } catch (err) {
            cb(failure(args, err));
          }
        };
      } else {
        tap.fn = (...args: unknown[]) => {
          if (elsewhere(placement, name, plugin, args)) return;
          try {
            return fn(...scoped(args));
          } catch (err) {
            const error = failure(args, err);
            if (error) throw error;
          }
        };
      }
      return tap;
    },
  });
}

// ---- Extension points of the deploy lifecycle ----

/**
 * Hooks into three steps of core's deploy lifecycle rather than phases of it: the switch of `current`, the
 * health check and the no-change check. Made on first use for a set of hooks (webpack's getCompilationHooks pattern), so that they
 * are not phases a plugin lists in `kraftwerk plugins`; taps are wrapped like every other hook's (a failure
 * names the plugin and the hook; collectors record the plugin). Core calls them when it builds the step.
 *
 *     lifecycleHooks(hooks).switch.tap(NAME, (ctx, steps) => { steps.afterSwitch(…); steps.onUndo(…); });
 *     lifecycleHooks(hooks).healthcheck.tap(NAME, (ctx, request) => { request.https = true; });
 *     lifecycleHooks(hooks).fingerprint.tap(NAME, (ctx, parts) => { parts.add('inputs', …); });
 */
export function lifecycleHooks(hooks: Hooks): LifecycleHooks {
  let made = lifecycleHooksOf.get(hooks);
  if (!made) {
    made = Object.freeze({
      /** switch (restart, per node): what runs with the switch of `current`, and in the undo of a release that did not go live. */
      switch: new AsyncSeriesHook<[DeployContext, SwitchSteps]>(['deploy', 'steps']),
      /** healthcheck (restart, per node): how core asks the site once it switched. */
      healthcheck: new AsyncSeriesHook<[DeployContext, HealthCheckRequest]>(['deploy', 'request']),
      /** fingerprint (preSync, per node, after the probe): what the plugin's part of the release depends on, for the no-change check. */
      fingerprint: new AsyncSeriesHook<[DeployContext, FingerprintParts]>(['deploy', 'parts']),
    });
    for (const [name, hook] of Object.entries(made)) interceptTaps(hook as AsyncSeriesHook<unknown[]>, name, undefined, placementOf.get(hooks));
    lifecycleHooksOf.set(hooks, made);
  }
  return made;
}

export interface LifecycleHooks {
  readonly switch: AsyncSeriesHook<[DeployContext, SwitchSteps]>;
  readonly healthcheck: AsyncSeriesHook<[DeployContext, HealthCheckRequest]>;
  readonly fingerprint: AsyncSeriesHook<[DeployContext, FingerprintParts]>;
}

const lifecycleHooksOf = new WeakMap<Hooks, LifecycleHooks>();

/** Call a task-collecting hook and return its sorted tasks. */
export async function collectTasks<C>(
  hook: AsyncSeriesHook<[C, TaskList<C>]>,
  hookName: string,
  ctx: C,
): Promise<TaskList<C>> {
  const tasks = new TaskList<C>(hookName);
  await hook.promise(ctx, tasks);
  return tasks;
}
