/**
 * cloud-init user data for a new node.
 *
 * The node is recorded with user `admin` (the login user of Debian's cloud images)
 * and `sudo: true` rather than with root: Debian's images disable root SSH on
 * purpose (cloud-init's disable_root), and re-enabling it would need an sshd
 * change the user cannot see in the AWS console. Kraftwerk runs every command
 * through `sudo -n` for such nodes. The key also goes into user data so that
 * clouds that speak the EC2 API but ignore KeyName still let the user in.
 */
export function renderUserData(options: { hostname: string; publicKey: string }): string {
  const key = options.publicKey.trim();
  // A YAML scalar on one line; keys never contain quotes or newlines (checked in readPublicKey).
  return [
    '#cloud-config',
    '# written by kraftwerk create-node',
    `hostname: ${options.hostname}`,
    'preserve_hostname: false',
    'ssh_authorized_keys:',
    `  - ${JSON.stringify(key)}`,
    '',
  ].join('\n');
}

/** The login user Debian's official cloud images create (with passwordless sudo). */
export const DEBIAN_CLOUD_USER = 'admin';
