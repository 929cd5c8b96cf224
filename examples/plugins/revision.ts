import { definePlugin, settingsOf, sh, Stage, z } from 'kraftwerk';

/**
 * A project-local plugin: writes REVISION into every release (the git
 * revision and the release id), so the app and its operators can tell what
 * code is running. Enable it in kraftwerk.yaml with
 *
 *     plugins:
 *       - ../plugins/revision.ts
 *
 * and, if the app looks for another name, give it its own setting:
 *
 *     revision:
 *       file: VERSION
 */

/** The plugin's keys of kraftwerk.yaml, validated with the rest of the file (errors name the plugin). */
const settings = {
  revision: z
    .strictObject({
      // One file name in the release's top folder: no path, and not a hidden file such as Kraftwerk's own .kraftwerk.
      file: z
        .string()
        .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/, 'a file name such as REVISION (letters, digits, . _ -; not starting with a dot)')
        .default('REVISION')
        .describe('File written into each release'),
    })
    .prefault({})
    .describe('What the revision plugin writes'),
};

export default definePlugin({
  name: 'revision',
  description: 'writes REVISION (git revision and release id) into each release',
  settings,
  apply(hooks, site) {
    const { file } = settingsOf(site, settings).revision;
    hooks.sync.tap('revision', (_ctx, tasks) => {
      tasks.add({
        title: `write ${file}`,
        stage: Stage.LATE,
        async run(ctx, task) {
          const text = `${ctx.release.revision ?? 'unknown'} ${ctx.release.id}\n`;
          await ctx.remote.exec(sh`printf %s ${text} > ${`${ctx.release.path}/${file}`}`);
          task.title(`write ${file} (${ctx.release.revision ?? 'not a git checkout'})`);
        },
      });
    });
  },
});
