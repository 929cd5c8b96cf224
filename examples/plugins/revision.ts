import { definePlugin, sh, Stage } from 'kraftwerk';

/**
 * A project-local plugin: writes REVISION into every release (the git
 * revision and the release id), so the app and its operators can tell what
 * code is running. Enable it in kraftwerk.yaml with
 *
 *     plugins:
 *       - ../plugins/revision.ts
 */
export default definePlugin({
  name: 'revision',
  description: 'writes REVISION (git revision and release id) into each release',
  apply(hooks) {
    hooks.sync.tap('revision', (_ctx, tasks) => {
      tasks.add({
        title: 'write REVISION',
        stage: Stage.LATE,
        async run(ctx, task) {
          const text = `${ctx.release.revision ?? 'unknown'} ${ctx.release.id}\n`;
          await ctx.remote.exec(sh`printf %s ${text} > ${`${ctx.release.path}/REVISION`}`);
          task.title(`write REVISION (${ctx.release.revision ?? 'not a git checkout'})`);
        },
      });
    });
  },
});
