/**
 * Fault injection (issue 13): kill -9 of the CLI at every step boundary of
 * preSync, sync, install and restart (configure has its own file,
 * faults-kill-configure.test.ts); see faults-kill.ts.
 */
import { killAtEveryBoundary } from './faults-kill.ts';

killAtEveryBoundary('flt-kill', ['preSync', 'sync', 'install', 'restart']);
