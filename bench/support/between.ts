/**
 * The line our bench child prints between its cold and its warm invocation (BENCH_WARM=1), then waits for one
 * line on its stdin: the bench checks and removes the cold restore's file meanwhile (measure.ts, `between`).
 * A module of its own, importing nothing, since the child's bundle must hold nothing but what it measures.
 */
export const BETWEEN_LINE = '{"bench":"between"}';
