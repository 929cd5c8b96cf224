"""bench/deploy's Fabric peer: rsync of the tree, then the reload over one
Fabric (paramiko) connection, as a fabfile would do it.

Arguments: a JSON object from bench/peers.ts with host, user, port,
key_file, known_hosts, rsync (the full rsync argv) and reload (a shell
command)."""
import json
import shlex
import sys

from fabric import Connection
from paramiko import RejectPolicy

spec = json.loads(sys.argv[1])
conn = Connection(spec["host"], user=spec["user"], port=spec["port"], connect_kwargs={"key_filename": spec["key_file"], "look_for_keys": False, "allow_agent": False})
# Check the sandbox's host key (Fabric would otherwise accept any key it is shown).
conn.client.load_host_keys(spec["known_hosts"])
conn.client.set_missing_host_key_policy(RejectPolicy())
conn.local(shlex.join(spec["rsync"]), hide=True)
conn.run(spec["reload"], hide=True)
conn.close()
