/** Restores: the public surface of src/fetch (the fetch function, the restore CLI and the demo use these). */
export { fetchSegment, type FetchRuntime, type FetchOptions } from './fetchSegment.ts';
export { restoreAndCheck, type ExpectedBytes } from './restoreAndCheck.ts';
export { locateSegment, type LocatedSegment } from './locate.ts';
