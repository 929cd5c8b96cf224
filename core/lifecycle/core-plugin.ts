import path from 'node:path';
import { KraftwerkError, lastLines } from '../errors.ts';
import type { Hooks } from '../engine/hooks.ts';
import { definePlugin } from '../engine/plugin.ts';
import { SITES_DIR } from './probe.ts';
import { isProvisioned } from './provisioned.ts';
import { sh } from '../shell/sh.ts';
import { inSiteEnv } from '../shell/site-shell.ts';
import { computeSiteEnvironment } from './site-environment.ts';
import { resolveSecrets } from './site-secrets.ts';
import { releaseConfig, type Site } from '../config/site.ts';
import { Stage } from '../engine/tasks.ts';
import { hasRole } from '../engine/topology.ts';
import { CommandTimeoutError } from '../remote/remote.ts';
import { deployTimeouts } from '../config/durations.ts';
import { interruptOf } from '../engine/interrupt.ts';
import { forgetLock, heldLock, lockReleaseWithLastCommand } from './held-lock.ts';
import { checkProject } from './project-check.ts';
import { inspectNode } from './inspect-node.ts';
import { openReleaseCommand, prepareSiteCommand, preparedSiteMarker, siteFolders } from './site-folders.ts';
import { collectSwitchSteps, execSwitch, LOCK_LOST_EXIT, SWITCHED_MARKER, SWITCHED_STATE, switchCommand } from './switch.ts';
import { healthCheckCommand, healthCheckRequest } from './healthcheck.ts';
import { finishReleaseCommand, RECORD_STATE, reportFinish } from './release-record.ts';
import { writeFiles } from './release-files.ts';
import { compareWithLiveTask, FINGERPRINT_STATE } from './no-change.ts';

/** Set when release commands did not run: the switch links `.venv` and opens the release folder instead. */
const LINK_AT_SWITCH_STATE = 'core.linkAtSwitch';
const RECORD_STAGE = Stage.VERIFY + 100;

/**
 * Core's own part of a deploy, written as a plugin like any other: checks,
 * the release folder and rsync, the environment file, release commands, the
 * atomic switch of `current` and the health check.
 */
export const corePlugin = definePlugin({
  name: 'core',
  apply(hooks: Hooks, site: Site) {
    hooks.preSync.tap('core', (_ctx, tasks) => {
      tasks.add({
        title: 'check project',
        stage: Stage.PREPARE - 100,
        run: () => checkProject(site),
      });
      tasks.add({
        title: 'inspect node',
        stage: Stage.PREPARE,
        run: (ctx, task) => inspectNode(ctx, task, 'deploy'),
      });
      tasks.add(compareWithLiveTask(hooks));
    });

    hooks.sync.tap('core', (ctx, tasks) => {
      const marker = preparedSiteMarker(site);
      ctx.probe.read(marker.path).exists(...siteFolders(site));
      tasks.add({
        title: 'prepare site user and folders',
        stage: Stage.PREPARE,
        skip: (c) =>
          isProvisioned(c.facts, marker) && siteFolders(site).every((f) => c.facts.exists.has(f)) ? 'site user and folders (unchanged)' : false,
        run: async (c) => {
          await c.remote.exec(prepareSiteCommand(site));
          c.files.add(marker);
        },
      });
      tasks.add({
        title: 'rsync project',
        run: async (ctx, task) => {
          const { findRsyncExcludeFile } = await import('../remote/rsync.ts');
          const stats = await ctx.remote.rsync(
            {
              kind: 'release',
              source: site.sourceDir,
              dest: ctx.release.path,
              linkDest: ctx.release.previous ? `${site.paths.releases}/${ctx.release.previous}` : undefined,
              excludes: site.config.exclude,
              excludeFromFile: findRsyncExcludeFile(site.sourceDir),
              group: site.user,
            },
            { onLine: (line) => task.output(line) },
          );
          if (!stats) return;
          task.title(`rsync project → releases/${ctx.release.id} (${stats.bytesSent ?? '?'} bytes sent)`);
        },
      });
    });

    hooks.configure.tap('core', (_ctx, tasks) => {
      tasks.add({
        title: 'environment',
        stage: Stage.PREPARE - 50,
        run: async (ctx, task) => {
          const { vars, envFile: content } = await computeSiteEnvironment(hooks, site, ctx, ctx.facts.env, ctx.facts.envLocal, await resolveSecrets(site));
          ctx.env = vars;
          // The names from env.local are recorded in the file: a rollback to this release replaces them with the values of then (see withCurrentSiteVariables).
          ctx.files.add({ path: releaseConfig(ctx.release.path).env, content, mode: 0o640, owner: 'root', group: site.user });
          ctx.files.add({
            path: `${SITES_DIR}/${site.name}/domains`,
            content: `${[...site.domains, ...site.aliases].join('\n')}\n`,
            mode: 0o644,
          });
          task.title(`environment (${Object.keys(vars).length} variables)`);
        },
      });
      tasks.add({
        title: 'write configuration',
        stage: Stage.WRITE_FILES,
        run: async (ctx, task) => {
          const changed = await writeFiles(ctx);
          task.title(`write configuration (${ctx.files.all.length} files, ${changed.length} changed)`);
        },
      });
      tasks.add({
        title: 'snapshot data before release commands',
        stage: Stage.AFTER_FILES + 40,
        skip: (ctx) =>
          !site.config.release.length
            ? true
            : !ctx.facts.currentRelease && !ctx.remote.dryRun
              ? 'first deploy: nothing to snapshot'
              : false,
        run: async (ctx, task) => {
          const { takeSnapshot } = await import('./snapshots.ts');
          const parts = await takeSnapshot(hooks, ctx, task);
          task.title(parts ? `snapshot data → backups/pre-${ctx.release.id}` : 'snapshot data (no plugin keeps data)');
        },
      });
      tasks.add({
        title: 'release commands',
        stage: Stage.AFTER_FILES + 50,
        run: async (ctx, task) => {
          if (!site.config.release.length) {
            // Nothing runs in the release before it goes live: the switch opens it, in its own command.
            ctx.state.set(LINK_AT_SWITCH_STATE, true);
            return task.title('release commands (none)');
          }
          await ctx.remote.exec(openReleaseCommand(site, ctx.release));
          // Interruptible: a Ctrl-C, a timeout or a lost connection stops the command on the node too.
          const timeoutMs = deployTimeouts(site.config).releaseCommandMs;
          for (const command of site.config.release) {
            task.output(`$ ${command}`);
            await ctx.remote
              .exec(inSiteEnv(site, { dir: ctx.release.path, venv: ctx.release.venv, command }), {
                onStdout: (c) => task.output(c),
                onStderr: (c) => task.output(c),
                interruptible: true,
                timeoutMs,
              })
              .catch((err: unknown) => {
                if (!(err instanceof CommandTimeoutError)) throw err;
                throw new KraftwerkError(`release command \`${command}\` on ${ctx.node} (configure) timed out: it ${CommandTimeoutError.what(err.kind, err.limitMs)}, and was stopped`, {
                  hint: `Nothing was switched. If it needs longer, raise timeouts.${err.kind === 'total' ? 'release_commands' : 'silence'} in ${path.basename(site.configFile)}.`,
                });
              });
          }
        },
      });
    });

    hooks.restart.tap('core', (_ctx, tasks) => {
      tasks.add({
        title: 'switch current release',
        stage: Stage.SWITCH,
        run: async (ctx, task) => {
          const open = ctx.state.get(LINK_AT_SWITCH_STATE) ? openReleaseCommand(site, ctx.release) : undefined;
          const lock = heldLock(ctx);
          const lost = lock?.lost;
          if (lost) throw lost;
          // From here on a Ctrl-C lets the deploy finish (health check, rollback); before, it stops it.
          interruptOf(ctx)?.beginSwitch();
          const switchIt = switchCommand(site, ctx.release.id, lock?.info.token, await collectSwitchSteps(hooks, ctx));
          const res = await execSwitch(ctx, open ? sh`${open} && ${switchIt}` : switchIt);
          const switched = ctx.remote.dryRun || res.stdout.split('\n').includes(SWITCHED_MARKER);
          // Once `current` moved, the rollback logic owns this node, whatever failed after the rename.
          if (switched) ctx.state.set(SWITCHED_STATE, true);
          if (res.code !== 0) {
            const why = lastLines(res.stderr.trim() || res.stdout.trim(), 8);
            if (switched) {
              throw new KraftwerkError(`the switch on ${ctx.node} (restart) moved current to ${ctx.release.id}, then failed (exit ${res.code}):\n${why}`);
            }
            throw new KraftwerkError(
              res.code === LOCK_LOST_EXIT
                ? `the switch on ${ctx.node} (restart) was refused: the deploy lock is no longer this deploy's`
                : `the switch on ${ctx.node} (restart) failed (exit ${res.code}): ${why}`,
              {
                hint: `Nothing was switched: ${ctx.release.previous ? `release ${ctx.release.previous}` : "the site's live release"} keeps serving.`,
              },
            );
          }
          task.title(`switch current → ${ctx.release.id}`);
        },
      });
      tasks.add({
        title: 'health check',
        stage: Stage.VERIFY,
        // Only a node that serves the site can answer for it (not a database node of a split group).
        skip: (ctx) => (site.config.healthcheck === false ? 'healthcheck: false' : !hasRole(ctx, 'web') ? 'not a web node' : false),
        run: async (ctx, task) => {
          const hc = site.config.healthcheck as Exclude<typeof site.config.healthcheck, false>;
          const limit = deployTimeouts(site.config).healthcheckMs;
          const res = await ctx.remote
            .exec(healthCheckCommand(site, await healthCheckRequest(hooks, ctx)), { check: false, interruptible: true, timeoutMs: limit })
            .catch((err: unknown) => {
              if (!(err instanceof CommandTimeoutError)) throw err;
              throw new KraftwerkError(`health check on ${ctx.node} (restart) timed out: GET ${hc.path} ${CommandTimeoutError.what(err.kind, err.limitMs)}`, {
                hint: `If the site needs longer to answer, raise timeouts.healthcheck in ${path.basename(site.configFile)}.`,
              });
            });
          const code = res.stdout.trim() || 'no answer';
          if (res.code !== 0) {
            throw new KraftwerkError(`health check failed: GET ${hc.path} (Host: ${site.canonicalDomain}) answered ${code}`, {
              hint: `See the site's log: kraftwerk logs ${ctx.node}`,
            });
          }
          task.title(`health check: GET ${hc.path} → ${code}`);
        },
      });
      tasks.add({
        title: 'record release',
        stage: RECORD_STAGE,
        run: async (ctx) => {
          const r = ctx.release;
          // A rollback keeps the release's own record (when and by whom it was deployed).
          const base = (ctx.state.get(RECORD_STATE) as Record<string, unknown> | undefined) ?? {
            time: new Date().toISOString(),
            deployer: r.deployer,
            revision: r.revision,
            venv: r.venv,
            // What went live, for the next deploy's no-change check (a digest: no value of the environment in it).
            fingerprint: ctx.state.get(FINGERPRINT_STATE),
          };
          const finish = finishReleaseCommand(site, { ...base, id: r.id, status: 'live' }, r.previous);
          // The deploy's last command also releases its lock (core's finally does when this is not reached).
          const unlock = await lockReleaseWithLastCommand(ctx, RECORD_STAGE);
          const res = await ctx.remote.exec(unlock ? sh`(${finish}); kw_rc=$?; ${unlock}; exit $kw_rc` : finish, { check: false });
          if (unlock) forgetLock(ctx);
          reportFinish(ctx, res.code, res.stderr);
        },
      });
    });
  },
});
