// Task allocation moved to format/allocate.ts: edge and KB (`kb eval`) must allocate alike, so
// the pure table lives where both may import it. Re-exported for the runtime modules, tests
// and benches that import it from here.
export { TaskTable, sqDistance, type Allocation } from '../format/allocate.js';
