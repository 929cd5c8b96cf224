/**
 * The files plugin's setting: `files:` in kraftwerk.yaml. Without it the uploads live on each
 * node (/srv/<site>/shared/uploads), which is right for one web node. With several web nodes
 * they must see the same files: `shared_path` names a mount the user provides on every web,
 * worker and cron node (NFS, EFS…); the site's uploads are `<shared_path>/<site>` there.
 *
 *     key                 reaches                                             checked as
 *     files.shared_path   nginx alias and disable_symlinks, UPLOADS_PATH,     an absolute path of letters, digits,
 *                         shell words (quoted)                                . _ - and /, no . or .. segment,
 *                                                                               not a system folder
 */
import { z } from '../../core/index.ts';

/** Folders that are the system's or Kraftwerk's own: a mount there would put uploads among them. */
const SYSTEM_PREFIXES = ['/bin', '/boot', '/dev', '/etc', '/lib', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/var'];

const sharedPath = z
  .string()
  .regex(/^(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$/, 'an absolute path such as /mnt/uploads (letters, digits, . _ - and /; no spaces)')
  .refine((p) => !p.split('/').some((seg) => seg === '.' || seg === '..'), 'a path without . or .. segments')
  .refine((p) => !SYSTEM_PREFIXES.some((s) => p === s || p.startsWith(`${s}/`)), `a mount of your own, outside ${SYSTEM_PREFIXES.join(', ')}`);

export const FILES_SETTINGS = {
  files: z
    .strictObject({
      shared_path: sharedPath.describe(
        'A mount every web, worker and cron node has (NFS, EFS…): the uploads are <shared_path>/<site> there; needed with more than one web node',
      ),
    })
    .optional()
    .describe("Where the site's uploads are kept (default: on each node, /srv/<site>/shared/uploads)"),
};
