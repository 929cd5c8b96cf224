/**
 * files (service): a folder for files the site writes and nginx serves under
 * /uploads/ (the nginx plugin adds the location when this service is on).
 * Shared by every release, so uploads survive deploys and rollbacks.
 */
import { definePlugin, sh, Stage, type Command, type Hooks, type Site } from '../../core/index.ts';

const PLUGIN_NAME = 'files';

/**
 * Create the uploads folder if it is missing. Owned by the site user, readable
 * by its group (nginx is a member), closed to other sites. Prints
 * `kraftwerk: created` when it made the folder.
 */
export function uploadsFolderCommand(site: Site): Command {
  const dir = site.paths.uploads;
  return sh`[ -d ${dir} ] || { install -d -m 0750 -o ${site.user} -g ${site.user} ${dir} && echo 'kraftwerk: created'; }`;
}

export default definePlugin({
  name: PLUGIN_NAME,
  description: 'uploads folder shared by all releases, served by nginx at /uploads/ (UPLOADS_PATH)',
  apply(hooks: Hooks, site: Site) {
    hooks.environment.tap(PLUGIN_NAME, (_ctx, env) => {
      // The original's names.
      env.set('UPLOADS_PATH', site.paths.uploads);
      env.set('SITE_ROOT', site.paths.root);
    });

    hooks.configure.tap(PLUGIN_NAME, (_ctx, tasks) => {
      tasks.add({
        title: 'uploads folder',
        stage: Stage.PREPARE,
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(uploadsFolderCommand(site));
          task.title(stdout.includes('kraftwerk: created') ? `uploads folder ${site.paths.uploads} (created)` : 'uploads folder (unchanged)');
        },
      });
    });
  },
});
