/**
 * Fault injection (issue 13): kill -9 of the CLI at every step boundary of
 * configure, where the configuration of the new release is written and its
 * release commands run; see faults-kill.ts.
 */
import { killAtEveryBoundary } from './faults-kill.ts';

killAtEveryBoundary('flt-kill-cfg', ['configure']);
